"""Benchmark: float32 against ``--dtype auto``, on one model, in one run.

    python benchmarks/bench_dtype.py --model qwen2.5-coder-0.5b-instruct
    python benchmarks/bench_dtype.py --model qwen2.5-coder-1.5b-instruct --keep runs/dtype-1.5b

Three parts, each in float32 and in the dtype ``auto`` picks on this machine:

1. forward: ``resid_pre`` cached at every layer for 32 harmful prompts (one batch);
2. generation: 32 greedy answers of 24 tokens, batched;
3. end to end: ``workbench audit --preset quick`` (fresh process, fresh run directory;
   ``--reuse`` takes a complete run already in ``--keep``, timed by its run.json).

and what changed between the two:

- the cosine of the refusal direction and of each CAA vector (float32 run against auto run),
  the selected layer and eoi offset;
- greedy answers identical, and where the first differing token is;
- the ``asr.csv`` cells that differ.

The record names the CPU model, its native-bfloat16 flags, the core count and the load.
Where ``auto`` picks float32 the two halves are the same computation, and the record says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load_file as read_tensors

from timed_job import timed_job
from workbench import load_model
from workbench.activations import collect_activations
from workbench.data import embedded_instructions
from workbench.model.generation import generate_ids
from workbench.model import resolve_precision
from workbench.model.precision import cpu_bf16_flags, cpu_model, dtype_name
from workbench.runs import write_json



def first_difference(a: list[int], b: list[int]) -> int | None:
    """Index of the first token where two answers differ (None when identical)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def micro(spec: str, dtype: str, n: int, tokens: int) -> dict:
    """Forward and generation timings of one dtype, with the answers' token ids."""
    model = load_model(spec, device="cpu", dtype=dtype)
    prompts = model.tokenize_instructions(
        [i.instruction for i in embedded_instructions("harmful")[:n]])
    kw = dict(hooks=("resid_pre",), positions="last", batch_size=n, progress=False)
    collect_activations(model, prompts[:2], **kw)  # warm-up
    t = time.perf_counter()
    acts = collect_activations(model, prompts, **kw)["resid_pre"]
    forward = time.perf_counter() - t
    t = time.perf_counter()
    ids = generate_ids(model, prompts, tokens, batch_size=n, progress=False)
    gen = time.perf_counter() - t
    pad = model.tokenizer.pad_token_id
    return {"dtype": dtype_name(model.dtype), "forward_s": round(forward, 2),
            "generation_s": round(gen, 2), "prompt_tokens": sum(map(len, prompts)),
            "answers": [[t for t in a if t != pad] for a in ids], "acts": acts}


def audit(spec: str, dtype: str, out: Path, preset: str, reuse: bool = False) -> dict:
    """One quick audit in its own process (or, with ``reuse``, a complete one already in
    ``out``, timed by its own run.json)."""
    cmd = ["workbench", "audit", "--preset", preset, "--model", spec, "--dtype", dtype,
           "--out", str(out), "--quiet", "--no-png"]
    done = out / "run.json"
    if reuse and done.is_file() and json.loads(done.read_text()).get("status") == "complete":
        record = json.loads(done.read_text())
        return {"command": " ".join(cmd), "wall_s": record["timings_s"]["total"],
                "reused": True, "finished": datetime.fromtimestamp(
                    done.stat().st_mtime, timezone.utc).isoformat(timespec="seconds"),
                "dtype": record["model"]["dtype"], "timings_s": record["timings_s"]}
    timed = timed_job(cmd, out)
    return {**{k: v for k, v in timed.items() if k != "run"},
            "dtype": timed["run"]["model"]["dtype"]}


def compare_runs(a: Path, b: Path, tokenizer) -> dict:
    """What changed from run ``a`` (float32) to run ``b`` (auto)."""
    ta, tb = (read_tensors(str(p / "directions.safetensors")) for p in (a, b))
    runs = [json.loads((p / "run.json").read_text()) for p in (a, b)]
    ra, rb = (r["refusal"] for r in runs)
    steer = runs[0]["steering_layers"][0]

    def cos(x, y):
        x, y = x.double().flatten(), y.double().flatten()
        return round(float(x @ y / (x.norm() * y.norm())), 6)

    cosines = {"refusal.direction": cos(ta["refusal.direction"], tb["refusal.direction"])}
    for k in sorted(ta):
        if k.startswith("caa."):  # at the steering layer, and the least over layers 1..L-1
            per_layer = [cos(ta[k][i], tb[k][i]) for i in range(1, ta[k].shape[0])]
            cosines[k] = {f"layer_{steer}": per_layer[steer - 1], "min": min(per_layer),
                          "min_layer": 1 + per_layer.index(min(per_layer))}
    ga = {r["key"]: r for r in map(json.loads, open(a / "generations.jsonl"))}
    gb = {r["key"]: r for r in map(json.loads, open(b / "generations.jsonl"))}
    firsts = []
    for k in ga:
        if ga[k]["response"] != gb[k]["response"]:
            ia = tokenizer.encode(ga[k]["response"], add_special_tokens=False)
            ib = tokenizer.encode(gb[k]["response"], add_special_tokens=False)
            firsts.append(first_difference(ia, ib) or 0)
    with open(a / "asr.csv") as fa, open(b / "asr.csv") as fb:
        rows_a, rows_b = list(csv.reader(fa)), list(csv.reader(fb))
    cells = sum(x != y for r, s in zip(rows_a, rows_b) for x, y in zip(r, s))
    total = sum(len(r) for r in rows_a)
    labels = sum(ga[k].get("label") != gb[k].get("label") for k in ga)
    return {
        "refusal_selection": {"float32": [ra["layer"], ra["offset"]],
                              "auto": [rb["layer"], rb["offset"]],
                              "same": [ra["layer"], ra["offset"]] == [rb["layer"], rb["offset"]]},
        "cosines": cosines,
        "generations": len(ga), "identical_responses": len(ga) - len(firsts),
        "first_difference_token": {"mean": round(sum(firsts) / len(firsts), 1) if firsts else None,
                                   "min": min(firsts, default=None)},
        "judge_labels_differing": labels,
        "asr_csv": {"cells": total, "cells_differing": cells, "rows": len(rows_a) - 1,
                    "identical": rows_a == rows_b},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--n", type=int, default=32, help="prompts in the forward/generation parts")
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--skip-audit", action="store_true", help="forward and generation only")
    ap.add_argument("--keep", default=None, help="write the two audit run directories here")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse a complete audit already in --keep (its run.json timings count)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    auto = resolve_precision("auto", torch.device("cpu"))
    record = {"benchmark": "dtype", "model": args.model, "auto": auto.record(),
              "machine": {"cpu": cpu_model(), "bf16_flags": cpu_bf16_flags(),
                          "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "platform": platform.platform(), "python": sys.version.split()[0],
                          "torch": torch.__version__},
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    runs = {d: micro(args.model, d, args.n, args.tokens) for d in ("float32", "auto")}
    f, a = runs["float32"], runs["auto"]
    firsts = [first_difference(x, y) for x, y in zip(f["answers"], a["answers"])]
    diffs = [i for i in firsts if i is not None]
    acts_cos = torch.nn.functional.cosine_similarity(  # [n, pos, layer]
        f["acts"].double(), a["acts"].double(), dim=-1)
    record["micro"] = {
        "prompts": args.n, "new_tokens": args.tokens, "prompt_tokens": f["prompt_tokens"],
        "float32": {k: f[k] for k in ("dtype", "forward_s", "generation_s")},
        "auto": {k: a[k] for k in ("dtype", "forward_s", "generation_s")},
        "forward_speedup": round(f["forward_s"] / a["forward_s"], 2),
        "generation_speedup": round(f["generation_s"] / a["generation_s"], 2),
        "identical_answers": len(firsts) - len(diffs),
        "first_difference_token_mean": round(sum(diffs) / len(diffs), 1) if diffs else None,
        "resid_pre_cosine_min": round(float(acts_cos[..., 1:].min()), 6),
    }
    print(json.dumps(record["micro"], indent=2), flush=True)
    if not args.skip_audit:
        root = Path(args.keep or tempfile.mkdtemp(prefix="bench-dtype-"))
        audits = {d: audit(args.model, d, root / d, args.preset, args.reuse)
                  for d in ("float32", "auto")}
        tok = load_model(args.model, device="cpu").tokenizer
        record["audit"] = {
            "preset": args.preset, "runs": audits, "run_dirs": str(root),
            "speedup_wall": round(audits["float32"]["wall_s"] / audits["auto"]["wall_s"], 2),
            # the job's own clock (run.json timings total), comparable for fresh and reused runs
            "speedup_run_total": round(audits["float32"]["timings_s"]["total"]
                                       / audits["auto"]["timings_s"]["total"], 2),
            "agreement": compare_runs(root / "float32", root / "auto", tok),
        }
        print(json.dumps({k: v for k, v in record["audit"].items() if k != "runs"}, indent=2))
    out = Path(args.out or f"benchmarks/results/dtype_{args.model}.json")
    write_json(out, record)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
