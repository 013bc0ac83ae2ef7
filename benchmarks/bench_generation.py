"""Benchmark: batched steered generation vs one prompt at a time vs plain Hugging Face generate.

Same prompts, same greedy settings, same number of new tokens (EOS disabled so every method
produces exactly ``--max-new-tokens`` tokens). Targets (CPU): batched steered generation at
least 4x faster than one-at-a-time, and at most 1.2x the time of plain HF ``generate`` on an
unhooked copy of the model with the same batch size.

    OMP_NUM_THREADS=2 python benchmarks/bench_generation.py --model qwen2.5-coder-0.5b-instruct
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def _plain_hf(spec: str, device, dtype):
    """A fresh, unhooked Hugging Face copy of the same model (no bridge in its module tree)."""
    from transformers import AutoModelForCausalLM

    from workbench.model.embedded import EMBEDDED_MODELS, ensure_cached
    from workbench.model.tiny import TINY_MODELS, build_tiny_model

    if spec in TINY_MODELS:
        plain = build_tiny_model(TINY_MODELS[spec])[0]
    else:
        path = ensure_cached(EMBEDDED_MODELS[spec], dtype) if spec in EMBEDDED_MODELS else spec
        plain = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return plain.to(device=device, dtype=dtype).eval()


def _timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    from workbench import load_model
    from workbench.data import embedded_instructions
    from workbench.evaluation import generate
    from workbench.steering import add_vector

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--n-prompts", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default="float32", help="float32 (default), bfloat16, auto, ...")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    model = load_model(args.model, device=args.device, dtype=args.dtype)
    prompts = model.tokenize_instructions(
        [i.instruction for i in embedded_instructions("harmful")[: args.n_prompts]])
    vector = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0))
    vector = vector / vector.norm() * 2.0
    layer = model.n_layers // 2
    no_eos = {"eos_token_id": None, "min_new_tokens": args.max_new_tokens}

    def steered(batch_size):
        with add_vector(model, vector, layers=layer, coefficient=1.0, positions="eoi"):
            return generate(model, prompts, max_new_tokens=args.max_new_tokens,
                            batch_size=batch_size, progress=False, **no_eos)

    plain = _plain_hf(args.model, model.device, model.dtype)
    pad = model.tokenizer.pad_token_id

    def plain_generate():
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for s in range(0, len(order), args.batch_size):
            ids, mask = model.pad([prompts[i] for i in order[s:s + args.batch_size]])
            with torch.inference_mode():
                plain.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                               max_new_tokens=args.max_new_tokens, pad_token_id=pad,
                               temperature=None, top_p=None, top_k=None, **no_eos)

    steered(args.batch_size)  # warm-up
    results = {
        "batched_steered_s": _timed(lambda: steered(args.batch_size), args.repeats),
        "plain_hf_batched_s": _timed(plain_generate, args.repeats),
        "one_at_a_time_steered_s": _timed(lambda: steered(1), args.repeats),
    }
    results["speedup_vs_one_at_a_time"] = (results["one_at_a_time_steered_s"]
                                           / results["batched_steered_s"])
    results["ratio_vs_plain_hf"] = results["batched_steered_s"] / results["plain_hf_batched_s"]
    record = {
        "benchmark": "generation", "model": args.model, "n_prompts": len(prompts),
        "dtype": model.precision.record(),
        "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "steering": f"add_vector at resid_pre layer {layer}, positions eoi",
        "tokens_generated": len(prompts) * args.max_new_tokens, **results,
        "targets": {"speedup_vs_one_at_a_time": ">= 4", "ratio_vs_plain_hf": "<= 1.2"},
        "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "platform": platform.platform(),
                    "device": str(model.device)},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out = Path(args.out or f"benchmarks/results/generation_{args.model}.json")
    from workbench.runs import write_json

    write_json(out, record)
    print("| measure | value |\n|---|---|")
    for k, v in results.items():
        print(f"| {k} | {v:.3f} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
