"""Benchmark: steered generation throughput at a real 7B shape (random weights, bfloat16, CUDA).

A seeded random-weight model with Qwen2.5-7B's shape (28 layers, d_model 3584, d_mlp 18944,
28 heads, 4 KV heads; the tiny models' tokenizer and 1024-token vocabulary, so the unembedding
is smaller than the real model's) is loaded through the workbench. Measured, in tokens/s, on
the same batches with EOS disabled: plain HF ``generate`` (no hooks attached), ``generate``
under ``add_vector`` (eoi), one prompt at a time under ``add_vector``, and shared-prefix
multi-condition generation, at each batch size.

    python benchmarks/bench_gpu_generation.py --device cuda                       # on a GPU
    python benchmarks/bench_gpu_generation.py --shape tiny --device cpu --batch-sizes 4 \
        --n-prompts 4 --max-new-tokens 4                                           # a CPU check
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import torch

SHAPES = {
    "qwen2.5-7b": dict(n_layers=28, d_model=3584, d_mlp=18944, n_heads=28, n_kv_heads=4),
    "tiny": dict(n_layers=4, d_model=64, d_mlp=192, n_heads=4, n_kv_heads=2),
}


def build(shape: str, device: str, dtype: torch.dtype):
    """A WorkbenchModel with random weights of ``shape`` (seeded, built in code)."""
    from workbench.model import TransformersBackend, WorkbenchModel
    from workbench.model.tiny import TINY_MODELS, build_tiny_model

    spec = replace(TINY_MODELS["tiny-random"], name=f"random-{shape}", **SHAPES[shape])
    hf_model, tokenizer = build_tiny_model(spec)
    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as tmp:
        hf_model.config.save_pretrained(tmp)
        backend = TransformersBackend.boot(tmp, hf_model, tokenizer, torch.device(device), dtype)
    return WorkbenchModel(backend=backend, tokenizer=tokenizer, spec=spec.name, family="qwen2")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    from workbench.data import embedded_instructions
    from workbench.model.generation import generate_ids
    from workbench.steering.conditions import condition_delta, generate_conditions_ids
    from workbench.steering import add_vector

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="qwen2.5-7b", choices=sorted(SHAPES))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-sizes", default="64,256")
    ap.add_argument("--n-prompts", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--one-at-a-time", type=int, default=8,
                    help="prompts timed one at a time (the rate is per token)")
    ap.add_argument("--conditions", type=int, default=4, help="for the multi-condition path")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    dtype = getattr(torch, args.dtype)
    model = build(args.shape, args.device, dtype)
    items = embedded_instructions("harmful") + embedded_instructions("harmless")
    texts = [items[i % len(items)].instruction for i in range(args.n_prompts)]
    prompts = model.tokenize_instructions(texts)
    g = torch.Generator().manual_seed(0)
    vector = torch.randn(model.d_model, generator=g)
    layer = model.n_layers // 2
    no_eos = {"eos_token_id": None, "min_new_tokens": args.max_new_tokens}
    n_new = args.max_new_tokens

    def rate(fn, n_rows):
        fn()  # warm-up (kernels, allocator)
        _sync(args.device)
        t = time.perf_counter()
        fn()
        _sync(args.device)
        secs = time.perf_counter() - t
        return {"seconds": round(secs, 3), "tokens_per_s": round(n_rows * n_new / secs, 1)}

    results = {}
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        def run(bs=bs):
            return generate_ids(model, prompts, n_new, bs, progress=False, **no_eos)

        def steered(run=run):
            with add_vector(model, vector, layers=layer, coefficient=1.0, positions="eoi"):
                return run()

        conds = [{}] + [{layer: condition_delta(vector, c)}
                        for c in (1.0, -1.0, 2.0, -2.0)][:args.conditions - 1]
        results[f"batch_{bs}"] = {
            "plain_hf_generate": rate(run, len(prompts)),
            "steered": rate(steered, len(prompts)),
            "multi_condition_shared_prefix": rate(
                lambda bs=bs, conds=conds: generate_conditions_ids(
                    model, prompts, conds, n_new, "eoi", batch_size=bs, progress=False,
                    **no_eos),
                len(prompts) * len(conds)),
        }
    few = prompts[:args.one_at_a_time]
    with add_vector(model, vector, layers=layer, coefficient=1.0, positions="eoi"):
        results["one_at_a_time_steered"] = rate(
            lambda: generate_ids(model, few, n_new, 1, progress=False, **no_eos), len(few))
    record = {
        "benchmark": "gpu_generation", "shape": args.shape, **SHAPES[args.shape],
        "dtype": args.dtype, "device": args.device, "n_prompts": len(prompts),
        "max_new_tokens": n_new, "steering": f"add_vector resid_pre layer {layer}, eoi",
        "results": results, "torch": torch.__version__, "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out = Path(args.out or f"benchmarks/results/gpu_generation_{args.shape}.json")
    from workbench.runs import write_json

    write_json(out, record)
    print(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
