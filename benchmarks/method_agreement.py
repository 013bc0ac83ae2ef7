"""Does each extraction method find the behaviour? Cosine with the CAA vector, per layer.

    python benchmarks/method_agreement.py --model qwen2.5-coder-0.5b-instruct --layers 6,10,14 \\
        --out benchmarks/results/method_agreement_0.5b.json

Uses the quick audit's pairs (40 letter-balanced training pairs per behaviour, seed 0) and the
audit's own code (``method_vectors``): ``pca`` (letter-balanced: each item plus its
choices-swapped twin), ``logistic`` (called ``probe`` before), and, for comparison, the plain PCA of the differences that
the audit used before (whose first component is the answer-letter axis).
"""

from __future__ import annotations

import argparse
import time

import torch

from workbench import load_model
from workbench.activations import collect_activations
from workbench.data import embedded_contrast
from workbench.directions import caa_prompts, caa_vector, pca_of_differences
from workbench.directions.method_vectors import method_agreement, method_vectors
from workbench.jobs.config import build_config
from workbench.directions.compute import split_contrast
from workbench.model.precision import cpu_bf16_flags, cpu_model
from workbench.runs import write_json

BEHAVIOURS = ("sycophancy", "survival-instinct", "corrigible-neutral-HHH", "myopic-reward",
              "refusal", "hallucination", "coordinate-other-ais")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--layers", default="10", help="comma-separated layers")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    t0 = time.time()
    layers = [int(x) for x in args.layers.split(",")]
    cfg = build_config("quick", model=args.model, methods=["caa", "pca", "logistic"])
    model = load_model(args.model, dtype=args.dtype)
    pairs, _ = split_contrast({b: embedded_contrast(b) for b in BEHAVIOURS}, cfg.caa_limit,
                              cfg.efficacy_pairs, cfg.seed)
    caa = {b: caa_vector(model, p, progress=False) for b, p in pairs.items()}
    vecs = method_vectors(model, pairs, caa, layers, cfg.methods, cfg.seed, cfg.batch_size)
    flat = {(b, m, l, False): v[l] for (b, m), v in vecs.items() for l in layers}
    agree = method_agreement(flat)
    for b, p in pairs.items():  # the plain PCA, for comparison
        pos, neg = caa_prompts(model, p)
        kw = dict(layers=layers, positions="last", progress=False)
        d = (collect_activations(model, pos, **kw)["resid_pre"][:, 0].double()
             - collect_activations(model, neg, **kw)["resid_pre"][:, 0].double())
        plain = pca_of_differences(d)
        agree[b]["pca-plain"] = {l: float(torch.nn.functional.cosine_similarity(
            plain[i], caa[b][l].double(), dim=0)) for i, l in enumerate(layers)}
    write_json(args.out, {
        "command": "python benchmarks/method_agreement.py --model " f"{args.model} --layers "
                   f"{args.layers} --out {args.out}",
        "model": args.model, "dtype": str(model.dtype).removeprefix("torch."),
        "pairs_per_behaviour": cfg.caa_limit, "layers": layers, "cosine_with_caa": agree,
        "machine": {"cpu_model": cpu_model(), "bf16_flags": cpu_bf16_flags()},
        "seconds": round(time.time() - t0, 1)})
    for b, by_m in agree.items():
        print(b, " ".join(f"{m}@{l}={c:+.2f}" for m, by_l in by_m.items() if m != "caa"
                          for l, c in by_l.items()))


if __name__ == "__main__":
    main()
