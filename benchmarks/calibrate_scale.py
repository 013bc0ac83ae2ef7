"""How hard must a steering vector push before the refusal direction changes behaviour?

Adds the unit refusal direction (diff-in-means at the last eoi token, from ``--source-layer``)
at ``--layer`` with norm ``s * mean ||resid_pre||`` for each scale ``s``, subtracted on held-out
harmful prompts and added on held-out harmless ones, and prints substring refusal rates and the
share of incomprehensible answers. This is how the quick audit's norm-relative scale (+-1) was
chosen: docs/audit.md, "Choosing the scale".

    python benchmarks/calibrate_scale.py            # embedded model, about 4 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext

from workbench import load_model
from workbench.activations import collect_activations
from workbench.data import embedded_instructions
from workbench.directions import refusal_candidates
from workbench.evaluation import generate
from workbench.evaluation.judges import is_comprehensible, is_refusal
from workbench.geometry import unit
from workbench.steering import add_vector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--layer", type=int, default=10, help="steering layer")
    ap.add_argument("--source-layer", type=int, default=15, help="layer of the direction")
    ap.add_argument("--scales", default="0.25,0.5,1.0")
    ap.add_argument("--n-train", type=int, default=48)
    ap.add_argument("--n-test", type=int, default=16)
    ap.add_argument("--test-start", type=int, default=100,
                    help="held-out prompts are [test-start, test-start + n-test) of each set")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    args = ap.parse_args()

    model = load_model(args.model)
    harm = [i.instruction for i in embedded_instructions("harmful")]
    safe = [i.instruction for i in embedded_instructions("harmless")]
    n, k = args.n_train, args.n_test
    h_train, s_train = model.tokenize_instructions(harm[:n]), model.tokenize_instructions(safe[:n])
    cands = refusal_candidates(model, h_train, s_train, progress=False)
    r = unit(cands[-1, args.source_layer].double()).float()
    acts = collect_activations(model, h_train[:16] + s_train[:16], layers=[args.layer],
                               progress=False)["resid_pre"][:, 0, 0]
    resid = float(acts.double().norm(dim=-1).mean())
    a = args.test_start
    if a < n:
        ap.error(f"--test-start {a} overlaps the {n} training prompts; use >= {n}")
    h_test = model.tokenize_instructions(harm[a:a + k])
    s_test = model.tokenize_instructions(safe[a:a + k])

    def rates(prompts, coefficient: float) -> str:
        ctx = (nullcontext() if coefficient == 0 else
               add_vector(model, r, layers=args.layer, coefficient=coefficient, positions="eoi"))
        with ctx:
            out = generate(model, prompts, max_new_tokens=args.max_new_tokens, progress=False)
        refused = sum(map(is_refusal, out))
        broken = sum(not is_comprehensible(o) for o in out)
        return f"refusal {refused}/{len(out)}, incomprehensible {broken}/{len(out)}"

    print(f"{args.model}: direction from layer {args.source_layer}, steering at layer "
          f"{args.layer}, mean residual norm {resid:.2f}, n={k} held-out prompts per class")
    print(f"  unsteered:  harmful {rates(h_test, 0)}; harmless {rates(s_test, 0)}")
    for s in (float(x) for x in args.scales.split(",")):
        print(f"  scale {s:g}: harmful minus r {rates(h_test, -s * resid)}; "
              f"harmless plus r {rates(s_test, s * resid)}")


if __name__ == "__main__":
    main()
