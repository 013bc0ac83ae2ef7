"""Benchmark: the teaching demo's lesson (notebooks/06_teaching_demo.ipynb, Part 2), measured.

    python benchmarks/teaching_demo.py                       # the 0.5B teaching model, dtype auto
    python benchmarks/teaching_demo.py --dtype float32       # the notebook's default dtype

The same recipe as the notebook (keep the two in step):

1. the direction is fitted and selected on the notebook's prompts, ``harmful[:56]`` and
   ``harmless[:56]`` (48 to fit the candidates, 8 to score them), at the eoi token, at every
   third layer from the middle to the published layer cut, with the KL bound lifted to
   ``KL_DEMO`` (on the 0.5B the published bound of 0.1 lets only weak directions through);
2. the demo's prompts are the ``N_DEMO`` harmful prompts *not* among those 56 that the
   unsteered model is most inclined to refuse (:func:`workbench.data.selection.most_refused`
   on its refusal score, one forward each); nothing here looks at the ablated model to choose;
3. greedy answers of ``MAX_NEW_TOKENS`` tokens before and with the direction ablated at every
   layer, judged by the substring refusal markers; rates with Wilson 95% intervals.

Writes ``benchmarks/results/teaching_demo_<model>.json`` (``--out`` to change it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import workbench as wb
from workbench.data.selection import most_refused
from workbench.directions import prompt_refusal_scores
from workbench.directions.refusal import layer_cut
from workbench.evaluation import is_refusal, proportion_ci
from workbench.model.precision import cpu_model, dtype_name

N, N_VAL = 48, 8          # the notebook's fitting and scoring prompts per class
N_DEMO = 16               # prompts the demo shows
MAX_NEW_TOKENS = 40       # the notebook's token budget
KL_DEMO = 2.0             # the demo's KL bound (published: 0.1)


def demo_layers(n_layers: int) -> range:
    """Every third layer (an eighth of the depth) from the middle up to the layer cut."""
    return range(n_layers // 2, max(layer_cut(n_layers), n_layers // 2 + 1), max(1, n_layers // 8))


def rate(answers: list[str]) -> dict:
    """Refusals among ``answers``, with the Wilson 95% interval."""
    k = sum(is_refusal(a) for a in answers)
    lo, hi = proportion_ci(k, len(answers))
    return {"refusals": k, "n": len(answers), "rate": k / len(answers), "ci95": [lo, hi]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    out = args.out or Path(__file__).parent / "results" / f"teaching_demo_{args.model}.json"
    start = time.perf_counter()
    model = wb.load_model(args.model, device="cpu", dtype=args.dtype)
    harmful = wb.data.embedded_instructions("harmful")
    harmless = [i.instruction for i in wb.data.embedded_instructions("harmless")]
    fit = [i.instruction for i in harmful[:N + N_VAL]]
    r = wb.refusal_direction(model, fit, harmless[:N + N_VAL], n_train=N, n_val=N_VAL,
                             layers=demo_layers(model.n_layers), kl_threshold=KL_DEMO,
                             progress=False)
    held_out = harmful[N + N_VAL:]
    scores = prompt_refusal_scores(model, model.tokenize_instructions(
        [i.instruction for i in held_out]))
    demo = most_refused(held_out, scores, N_DEMO, exclude=set(fit))
    texts = [i.instruction for i in demo]
    before = wb.generate(model, texts, max_new_tokens=MAX_NEW_TOKENS)
    with wb.steering.ablate_directions(model, r.direction):
        after = wb.generate(model, texts, max_new_tokens=MAX_NEW_TOKENS)
    best = r.selection.best
    record = {
        "what": "teaching demo (notebooks/06_teaching_demo.ipynb, Part 2): refusal rate of the "
                "demo's held-out harmful prompts before and with the refusal direction ablated "
                "at every layer; greedy, substring refusal markers, Wilson 95% CI",
        "model": args.model, "dtype": dtype_name(model.precision.dtype),
        "direction": {"fit_prompts": f"harmful[:{N + N_VAL}], harmless[:{N + N_VAL}]",
                      "n_train": N, "n_val": N_VAL,
                      "layers_searched": list(demo_layers(model.n_layers)),
                      "kl_threshold": KL_DEMO, "layer": r.layer,
                      "selection_rule": r.selection.rule,
                      "scores": {"bypass": best.bypass, "induce": best.induce, "kl": best.kl}},
        "prompt_rule": f"most_refused: the {N_DEMO} harmful prompts outside the fit prompts "
                       "with the highest unsteered refusal score",
        "candidates": len(held_out),
        "prompt_ids": [i.id for i in demo],
        "prompt_scores": [float(scores[[h.id for h in held_out].index(i.id)]) for i in demo],
        "max_new_tokens": MAX_NEW_TOKENS,
        "before": rate(before), "ablated": rate(after),
        "answers": [{"id": i.id, "before": b, "ablated": a}
                    for i, b, a in zip(demo, before, after)],
        "seconds": round(time.perf_counter() - start, 1),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0]},
        "command": "python " + " ".join(["benchmarks/teaching_demo.py", *(argv or sys.argv[1:])]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "version": wb.__version__,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    b, a = record["before"], record["ablated"]
    print(f"refusals before: {b['refusals']}/{b['n']} ({b['rate']:.0%}); ablated: "
          f"{a['refusals']}/{a['n']} ({a['rate']:.0%}); layer {r.layer}; {record['seconds']} s "
          f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
