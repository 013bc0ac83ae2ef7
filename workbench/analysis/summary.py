"""The few lines a job prints when it ends; the whole story is in the run's report.md.

Numbers are read from the tables the run wrote (never recomputed), so the summary always
agrees with report.md and the CSVs.
"""

from __future__ import annotations

import csv
from pathlib import Path

from workbench.report import pct, pp


def _rows(path: Path) -> list[dict]:
    """A run's CSV table as string cells (``#`` comment lines skipped)."""
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def _rate(x: str) -> str:
    return pct(float(x), missing="n/a") if x not in (None, "") else "n/a"


def _points(x: str) -> str:
    return f"{pp(float(x))} pp" if x not in (None, "") else "n/a"


def audit_summary(out: str | Path, record: dict) -> str:
    """The end of an audit: baseline ASR with its n and 95% CI, the positive controls'
    verdicts, the effects specific to their vector, and where the report is."""
    out = Path(out)
    summary = record.get("summary") or {}
    base = next((r for r in _rows(out / "asr.csv") if r["behaviour"] == "none"
                 and r["template"] == "all"), None)
    lines = [f"baseline ASR {_rate(base['asr'])} ({base['n_jailbroken']} of {base['n']} "
             f"answers; 95% CI {_rate(base['ci_low'])} to {_rate(base['ci_high'])})"
             if base else "baseline ASR: n/a"]
    controls = summary.get("controls") or []
    lines.append("positive controls: " + ("; ".join(
        f"{c['behaviour']} (layer {c['layer']}) {c['status']}" for c in controls)
        if controls else "none run"))
    fam = [d for d in _rows(out / "delta_asr.csv") if d["family"] == "behaviour"]
    specific = [d for d in fam if d["verdict"].startswith("specific")]
    lines.append(f"specific effects: {len(specific)} of {len(fam)} behaviour conditions"
                 + (":" if specific else ""))
    lines += [f"  {d['behaviour']} ({d['method']}, layer {d['layer']}, x{float(d['coefficient']):g}"
              f"{', mitigated' if d['mitigated'] == 'True' else ''}): "
              f"ΔASR {_points(d['delta_asr'])} "
              f"[{_points(d['delta_ci_low'])}, {_points(d['delta_ci_high'])}]"
              f", Holm p {float(d['p_holm']):.2g} ({d['verdict']})" for d in specific]
    lines.append(f"report: {out / 'report.md'}")
    return "\n".join(lines)


def safesteer_summary(out: str | Path, record: dict | None = None) -> str:
    """The end of a SafeSteer job: the unsteered unsafe and refusal rates, each intervention's
    pooled change in the unsafe rate, and where the report is."""
    out = Path(out)
    rows = [r for r in _rows(out / "metrics.csv")
            if r["split"] == "harmful" and r["category"] == "all"]
    lines = []
    for r in rows:
        head = (f"{r['method']} (layer {r['layer']}, x{float(r['multiplier']):g})"
                if r["method"] != "none" else "unsteered")
        change = ("" if r["method"] == "none" else
                  f", Δunsafe {_points(r['delta_unsafe'])} "
                  f"[{_points(r['delta_unsafe_ci_low'])}, "
                  f"{_points(r['delta_unsafe_ci_high'])}], Holm p {r['p_holm'] or 'n/a'}")
        lines.append(f"{head}: unsafe {_rate(r['unsafe_rate'])}, refusal "
                     f"{_rate(r['refusal_rate'])} (n={r['n']}){change}")
    lines.append(f"report: {out / 'report.md'}")
    return "\n".join(lines)
