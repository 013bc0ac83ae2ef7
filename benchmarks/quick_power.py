"""Power of the quick audit's tests at its sizes, by simulation.

The quick preset answers 16 attack prompts under 2 templates per condition and has 16
unmitigated behaviour conditions (4 behaviours x 4 coefficients) in its Holm family. This
simulates the prompt-clustered sign-flip test (workbench.evaluation.stats.clustered_paired_delta)
on data shaped like that: each prompt has its own jailbreak propensity shared by its
templates (a Beta distribution with mean = the baseline ASR), steering adds a true change to
every prompt's propensity, and the test's power is the share of datasets it rejects at
0.05 (uncorrected) and at 0.05/16 (the strictest Holm step). The beyond-placebo test gets the
same treatment against k = 4 placebo conditions with no true change beyond the push.

    python benchmarks/quick_power.py            # writes benchmarks/results/quick_power.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from workbench.evaluation.stats import beyond_placebo, clustered_paired_delta
from workbench.model.precision import cpu_model

RESULTS = Path(__file__).parent / "results" / "quick_power.json"


def propensities(rng, n_prompts: int, mean: float, concentration: float = 2.0) -> np.ndarray:
    """Per-prompt jailbreak propensities around ``mean`` (Beta with the given concentration)."""
    a, b = mean * concentration, (1 - mean) * concentration
    return rng.beta(a, b, n_prompts)


def simulate(rng, n_prompts: int, n_templates: int, base: float, delta: float, k: int,
             placebo_delta: float):
    p0 = propensities(rng, n_prompts, base)
    rows = np.repeat(np.arange(n_prompts), n_templates)
    draw = lambda p: rng.random(len(rows)) < np.clip(p[rows], 0, 1)  # noqa: E731
    baseline = draw(p0)
    steered = draw(p0 + delta)
    placebos = [draw(p0 + placebo_delta) for _ in range(k)]
    return baseline, steered, placebos, [f"p{i}" for i in rows]


def power(n_prompts: int, n_templates: int, base: float, delta: float, family: int,
          reps: int, seed: int, k: int = 4, placebo_delta: float = 0.0) -> dict:
    rng = np.random.default_rng(seed)
    hits = {"delta_0.05": 0, "delta_holm_first": 0, "beyond_0.05": 0, "beyond_holm_first": 0}
    for r in range(reps):
        b, s, plc, clusters = simulate(rng, n_prompts, n_templates, base, delta, k,
                                       placebo_delta)
        p = clustered_paired_delta(b, s, clusters, n_resamples=2000, seed=r)["p_value"]
        q = beyond_placebo(s, plc, clusters, n_resamples=2000, seed=r)["p_value"]
        hits["delta_0.05"] += p < 0.05
        hits["delta_holm_first"] += p < 0.05 / family
        hits["beyond_0.05"] += q < 0.05
        hits["beyond_holm_first"] += q < 0.05 / family
    return {k_: v / reps for k_, v in hits.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--templates", type=int, default=2)
    ap.add_argument("--base", type=float, default=0.3, help="baseline ASR (1.5B quick: ~0.3)")
    ap.add_argument("--family", type=int, default=16, help="Holm family size")
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    t0 = time.time()
    rows = []
    for delta in (0.1, 0.2, 0.3, 0.4, 0.5):
        res = power(args.prompts, args.templates, args.base, delta, args.family, args.reps,
                    seed=int(delta * 100))
        rows.append({"true_delta_asr": delta, **res})
        print(f"ΔASR {delta:+.0%}: power {res['delta_0.05']:.2f} at 0.05, "
              f"{res['delta_holm_first']:.2f} at 0.05/{args.family}; beyond placebo (placebos "
              f"at 0) {res['beyond_0.05']:.2f} / {res['beyond_holm_first']:.2f}", flush=True)
    record = {"benchmark": "quick_power", "command": "python benchmarks/quick_power.py",
              "design": {"prompts": args.prompts, "templates": args.templates,
                         "baseline_asr": args.base, "holm_family": args.family,
                         "placebos": 4, "prompt_propensity": "Beta, concentration 2",
                         "replicates": args.reps},
              "rows": rows, "seconds": round(time.time() - t0, 1),
              "machine": {"cpu": cpu_model()}}
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
