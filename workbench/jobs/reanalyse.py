"""Re-run a finished audit's analysis from its files alone: no model, no generation.

The analysis is bookkeeping over ``generations.jsonl`` (the judged answers), ``efficacy.csv``
and ``conditions.csv`` (what each condition added), so a finished run can be re-read with a
newer analysis in seconds: tables, ``report.md``, the ``summary`` in ``run.json`` and the
figures are rewritten; the answers, vectors, timings and resources of the run are kept.
``projections.csv`` (which needs activations) is left as the run wrote it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.jobs.analysis import EFFICACY_FIELDS, analyse_run
from workbench.jobs.config import AuditConfig
from workbench.runs import read_json, write_json

_BOOL = {"True": True, "False": False}
_TEXT = {"behaviour", "method", "items", "coefficient_scale", "category", "template", "judge",
         "split"}


def _value(key: str, text: str):
    """A CSV cell back to the type the analysis wrote it from."""
    if key in _TEXT:
        return text
    if text in _BOOL:
        return _BOOL[text]
    if text == "":
        return None if key == "layer" else math.nan
    if key in ("layer", "n", "open_n"):
        return int(float(text))
    return float(text)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: _value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def condition_key(row: dict) -> str:
    """The key a condition has in ``generations.jsonl`` (``Condition.key``)."""
    return "|".join(str(row[k]) for k in ("behaviour", "method", "layer", "coefficient",
                                          "mitigated"))


def reanalyse_audit(run_dir: str | Path, figures: bool = True) -> dict:
    """Rewrite a finished audit's analysis in place; return its new ``summary``."""
    out = Path(run_dir)
    missing = [n for n in ("run.json", "generations.jsonl", "conditions.csv")
               if not (out / n).exists()]
    if missing:
        raise WorkbenchError(f"{out} lacks {', '.join(missing)}; give a finished audit run "
                             "directory (figures/ folders ship without generations.jsonl)")
    record = read_json(out / "run.json")
    if record.get("job") != "audit" or record.get("status") != "complete":
        raise WorkbenchError(f"{out} holds no finished audit (job {record.get('job')!r}, status "
                             f"{record.get('status')!r}); finish it with `workbench audit --out "
                             f"{out}` first")
    import json

    cfg = AuditConfig(**{k: v for k, v in record["config"].items()
                         if k in AuditConfig.__dataclass_fields__})
    with open(out / "generations.jsonl") as f:
        records = [json.loads(line) for line in f]
    cond_info = {}
    for row in _rows(out / "conditions.csv"):
        cond_info[condition_key(row)] = {k: row[k] for k in (
            "coefficient_abs", "vector_norm", "resid_norm", "cosine", "projection") if k in row}
    efficacy = []
    if (out / "efficacy.csv").exists():
        keep = [k for k in EFFICACY_FIELDS if not k.endswith(("_holm", "_bh"))]
        efficacy = [{k: r[k] for k in keep if k in r} for r in _rows(out / "efficacy.csv")]
    summary = analyse_run(out, records, None, None, None, cfg, record, efficacy=efficacy,
                          cond_info=cond_info)
    record["summary"] = summary
    write_json(out / "run.json", record)
    if figures:
        from workbench.figures import render_audit_figures
        from workbench.jobs.common import render_figures

        render_figures(render_audit_figures, out, record["config"].get("png", True))
    return summary
