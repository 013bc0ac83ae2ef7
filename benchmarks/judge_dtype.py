"""Does the probe judge say the same in bfloat16 as in float32?

    python benchmarks/judge_dtype.py --out benchmarks/results/judge_dtype_probe.json

The probe judge reads the embedded 0.5B model's residual stream, and its weights were fitted on
float32 features. Before it may run in bfloat16 (the audit's dtype on hardware with native
bfloat16), this scores labelled answers the workbench ships or reads (JailbreakBench's
human-majority set, pyrit's refusal set, the template-attack answers and the 40 held-out
template answers: 487 in all) with the judge's model in float32 and in bfloat16, and records:

- how many ``jailbroken`` labels differ between the two, per set;
- the largest and the mean change in P(jailbroken);
- Cohen's kappa against the human labels in each dtype (in-sample for the sets the probe was
  trained on, so a comparison between dtypes, not a validity figure);
- the wall time of each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from workbench.evaluation.judges import JAILBROKEN, SAFE, is_comprehensible, judge_agreement
from workbench.evaluation.judges import make_judge
from workbench.evaluation.judges.train import load_source, read_labels_file
from workbench.runs import write_json

SETS = ("jbb", "refusal", "templates")  # pyrit's objective set (395 long answers) left out for time
HELDOUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "judge_heldout.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/judge_dtype_probe.json")
    args = ap.parse_args()
    data = {name: load_source(name) for name in SETS}
    data["heldout"] = read_labels_file(HELDOUT, "heldout")
    out = {}
    for dtype in ("float32", "bfloat16"):
        judge = make_judge("probe", device="cpu", dtype=dtype)
        t = time.perf_counter()
        out[dtype] = {}
        for name, rows in data.items():  # one forward per answer: the label from its P
            proba = judge.proba([a.prompt for a in rows], [a.response for a in rows])
            labels = [("incomprehensible" if not is_comprehensible(a.response, **judge.thresholds)
                       else JAILBROKEN if p >= judge.threshold else SAFE)
                      for a, p in zip(rows, proba)]
            out[dtype][name] = (labels, proba)
        out[dtype]["seconds"] = time.perf_counter() - t
        del judge
    record = {"benchmark": "judge_dtype", "judge": "probe", "sets": {}}
    for name, rows in data.items():
        (lf, pf), (lb, pb) = out["float32"][name], out["bfloat16"][name]
        human = np.array([a.jailbroken for a in rows])
        kappa = {d: judge_agreement(np.array([x == "jailbroken" for x in lab]), human)["kappa"]
                 for d, lab in (("float32", lf), ("bfloat16", lb))}
        dp = np.abs(np.asarray(pf) - np.asarray(pb))
        record["sets"][name] = {"n": len(rows), "labels_differing": int(sum(
            a != b for a, b in zip(lf, lb))), "max_abs_dp": round(float(dp.max()), 4),
            "mean_abs_dp": round(float(dp.mean()), 5),
            "kappa_float32": round(kappa["float32"], 4), "kappa_bfloat16": round(kappa["bfloat16"], 4)}
    total = sum(s["n"] for s in record["sets"].values())
    record["total"] = {"n": total, "labels_differing": sum(
        s["labels_differing"] for s in record["sets"].values())}
    record["seconds"] = {d: round(out[d]["seconds"], 1) for d in out}
    print(json.dumps(record, indent=2))
    write_json(Path(args.out), record)


if __name__ == "__main__":
    main()
