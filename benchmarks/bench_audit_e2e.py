"""Benchmark: the whole audit, reference engine vs batched engine, end to end, in one run.

Runs ``workbench audit --engine reference`` and then ``--engine batched`` (each a fresh process
and a fresh run directory, same preset and flags), records both wall times and their per-stage
profiles (``run.json`` timings), and compares the results:

- ``asr.csv``: byte-identical or not;
- generations: how many responses are identical; for each that is not, the reference path is
  replayed for that prompt and condition and the top-2 logit gap at the first differing token
  is recorded, so a difference can be told to be a near-tie (float noise) or not.

Judging costs the same under both engines, so the benchmark fixes the judge (``--judge``,
default ``trained``, the quick preset's judge when the recorded 3.09x was measured); the
default ``probe`` judge adds about 200 s to each engine's quick audit.

    python benchmarks/bench_audit_e2e.py --preset quick                # the acceptance run
    python benchmarks/bench_audit_e2e.py --preset smoke --model tiny-random   # a check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path


def run_engine(engine: str, out: Path, extra: list[str]) -> dict:
    """One audit in its own process; its wall time and run.json."""
    from timed_job import timed_job

    timed = timed_job(["workbench", "audit", "--engine", engine, "--out", str(out), *extra], out)
    return {**{k: v for k, v in timed.items() if k != "run"},
            "refusal_layer": timed["run"]["refusal"]["layer"]}


def generations(out: Path) -> dict[str, dict]:
    return {r["key"]: r for r in map(json.loads, open(out / "generations.jsonl"))}


def near_tie_gaps(ref_dir: Path, keys: list[str], gens: dict[str, dict],
                  other: dict[str, dict]) -> list[dict]:
    """Top-2 logit gap of the reference path at the first token where the two runs differ."""
    import torch

    from workbench import load_model
    from workbench.model.generation import greedy_kwargs
    from workbench.jobs.audit import caa_behaviours, steer_condition, steering_vectors
    from workbench.jobs.config import AuditConfig
    from workbench.rundir import Condition, load_directions

    record = json.loads((ref_dir / "run.json").read_text())
    cfg = AuditConfig(**{k: v for k, v in record["config"].items()
                         if k in AuditConfig.__dataclass_fields__})
    if cfg.methods != ["caa"] or cfg.mitigation != "direction":
        raise SystemExit("near-tie replay supports the caa method with direction mitigation")
    model = load_model(cfg.model, device=cfg.device)
    directions = load_directions(ref_dir, caa_behaviours(cfg))
    layers = record["steering_layers"]
    vectors = steering_vectors(cfg, directions, {(b, "caa"): v for b, v in directions.caa.items()},
                               None, layers)
    out = []
    for key in keys:
        g = gens[key]
        cond = Condition(g["behaviour"], g["method"], g["layer"], g["coefficient"], g["mitigated"])
        text = (g["instruction"] if g["split"] == "harmless"
                else record["templates"][g["template"]].replace("{instruction}", g["instruction"]))
        prompt = model.tokenize_instructions([text])[0]
        ids, mask = model.pad([prompt])
        with (steer_condition(model, cfg, cond, vectors, g["coefficient_abs"]),
              torch.inference_mode()):
            res = model.generate(input_ids=ids, attention_mask=mask, output_logits=True,
                                 return_dict_in_generate=True,
                                 **greedy_kwargs(model, cfg.max_new_tokens))
        new = res.sequences[0, ids.shape[1]:].tolist()
        # the first generated token whose text leaves the other run's response
        decode = lambda t: model.tokenizer.decode(t, skip_special_tokens=True)  # noqa: E731
        step = next((k for k in range(len(new))
                     if not other[key]["response"].startswith(decode(new[:k + 1]))),
                    len(new) - 1)
        top = res.logits[step][0].float().topk(2).values
        out.append({"key": key, "step": step, "top2_gap": float(top[0] - top[1])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--model", default=None)
    ap.add_argument("--near-tie", type=float, default=0.05,
                    help="a top-2 logit gap below this counts as a near-tie")
    ap.add_argument("--keep", default=None, help="write the two run directories here")
    ap.add_argument("--out", default=None)
    ap.add_argument("--judge", default="trained",
                    help="judge of both runs (engine-independent; default trained)")
    args = ap.parse_args()
    extra = (["--preset", args.preset, "--quiet", "--judge", args.judge]
             + (["--model", args.model] if args.model else []))
    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-audit-"))
    runs = {e: run_engine(e, root / e, extra) for e in ("reference", "batched")}
    ref, new = generations(root / "reference"), generations(root / "batched")
    differing = sorted(k for k in ref if ref[k]["response"] != new[k]["response"])
    gaps = near_tie_gaps(root / "reference", differing, ref, new) if differing else []
    asr_same = ((root / "reference" / "asr.csv").read_bytes()
                == (root / "batched" / "asr.csv").read_bytes())
    label_diff = sum(ref[k]["label"] != new[k]["label"] for k in ref)
    record = {
        "benchmark": "audit_end_to_end", "preset": args.preset, "model": args.model or "default",
        "judge": args.judge,
        "runs": runs,
        "speedup_wall": round(runs["reference"]["wall_s"] / runs["batched"]["wall_s"], 3),
        "asr_csv_identical": asr_same, "generations": len(ref),
        "identical_responses": len(ref) - len(differing), "differing": gaps,
        "differing_labels": label_diff, "near_tie_threshold": args.near_tie,
        "differing_near_ties": sum(g["top2_gap"] < args.near_tie for g in gaps),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": sys.version.split()[0]},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_dirs": str(root),
    }
    out = Path(args.out or f"benchmarks/results/audit_e2e_{args.preset}.json")
    from workbench.runs import write_json

    write_json(out, record)
    print(json.dumps({k: v for k, v in record.items() if k != "differing"}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
