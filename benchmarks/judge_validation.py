"""Write the judges' shipped agreement (validation.json, printed in every report) from records.

    python benchmarks/judge_validation.py

Reads ``benchmarks/results/judge_nested_cv.json`` (nested cross-validation on the 842 labelled
answers), ``judge_test.json`` (the untouched test set, scored once) and ``judge_dev.json`` (the
dev set that chose the default judge), and writes one entry per judge and set with the 95%
request-grouped bootstrap intervals in its ``method`` (and as ``accuracy_ci``/``kappa_ci``).
No figure is typed by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path("benchmarks/results")
OUT = Path("workbench/evaluation/judges/validation.json")
JUDGES = ("substring", "trained", "probe", "ensemble:trained,substring")
SETS = {  # key in judge_nested_cv.json -> description
    "jbb": "JailbreakBench judge comparison, human majority",
    "objective": "pyrit objective-scorer set, human 'objective achieved'",
    "refusal": "pyrit refusal-scorer set, refusal/off-topic = not jailbroken (docs/judges.md)",
    "templates": "template-attack answers (workbench/data/judge_labels)",
}
NESTED_COMMAND = "python benchmarks/judge_nested_cv.py"
METHOD = {
    "substring": "fixed rule (no training)",
    "trained": "nested 5-fold grouped CV: C chosen inside each training fold",
    "probe": "nested 5-fold grouped CV: layer, pooling and C chosen inside each training fold",
    "ensemble:trained,substring": "majority of 2 members (= both say jailbroken), the trained "
                                  "member's labels from nested 5-fold grouped CV",
}


def entry(set_name: str, m: dict, method: str, command: str, acc_key: str, kappa_key: str,
          unit: str) -> dict:
    """One validation entry: point figures, the grouped intervals, how and by what command."""
    acc, kap = m[acc_key], m[kappa_key]
    return {"set": set_name, "n": m["n"], "accuracy": round(m["accuracy"], 4),
            "kappa": round(m["kappa"], 4),
            "accuracy_ci": [round(v, 3) for v in acc], "kappa_ci": [round(v, 3) for v in kap],
            "method": f"{method}; 95% CIs, bootstrap over {m['n_groups']} {unit}: accuracy "
                      f"[{acc[0]:.2f}, {acc[1]:.2f}], kappa [{kap[0]:.2f}, {kap[1]:.2f}]",
            "command": command}


def validation(nested: dict, test: dict, dev: dict) -> dict:
    """Every judge's entries: the four labelled sources (nested CV), then dev, then test."""
    out = {}
    for judge in JUDGES:
        scores = nested[judge]["nested"] if judge in ("trained", "probe") else nested[judge]
        rows = [entry(desc, scores[key], METHOD[judge], NESTED_COMMAND, "accuracy_ci",
                      "kappa_ci", "request groups") for key, desc in SETS.items()]
        rows.append(entry("dev set: 40 template-attack answers (tests/data/judge_heldout.jsonl; "
                          "never trained on, but it chose the default judge)", dev[judge],
                          "held out", "workbench judge-eval --labels tests/data/judge_heldout.jsonl"
                          f" --judge {judge}", "accuracy_ci_grouped", "kappa_ci_grouped",
                          "requests"))
        rows.append(entry("untouched test set: 102 template-attack answers "
                          "(tests/data/judge_test.jsonl; scored once, after it was frozen)",
                          test[judge], "held out, chose nothing",
                          f"workbench judge-eval --labels tests/data/judge_test.jsonl --judge "
                          f"{judge}", "accuracy_ci_grouped", "kappa_ci_grouped", "requests"))
        out[judge] = rows
    return out


def as_text(result: dict) -> str:
    """JSON with one entry per line, as the file has always been laid out."""
    judges = [f"  {json.dumps(judge)}: [\n" + ",\n".join(
        f"    {json.dumps(e, ensure_ascii=False)}" for e in rows) + "\n  ]"
        for judge, rows in result.items()]
    return "{\n" + ",\n".join(judges) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    read = {name: json.loads((RESULTS / f"judge_{name}.json").read_text())
            for name in ("nested_cv", "test", "dev")}
    result = validation(read["nested_cv"], read["test"], read["dev"])
    Path(args.out).write_text(as_text(result))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
