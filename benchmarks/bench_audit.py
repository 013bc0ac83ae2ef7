"""Benchmark: the audit's costly stages, unoptimised vs optimised, in one run, outputs compared.

Stages (the quick preset's settings unless overridden):

- refusal selection: ``search="full"`` vs ``search="ordered"`` (same pick expected);
- generation: every condition (baseline, behaviour x layer x coefficient x mitigated) through
  the per-condition path (``generate`` under ``add_vector``) vs shared-prefix multi-condition
  generation (``generate_conditions``), on the same prompts, vectors and settings.

Generations that differ are checked at their first differing token: the top-2 logit gap of the
reference there says whether it was a near-tie (float noise) or a real difference.

    python benchmarks/bench_audit.py --preset quick                       # the full comparison
    python benchmarks/bench_audit.py --model tiny-random --preset smoke   # seconds, a check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch


def _time(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def top2_gap(model, prompt, vector, layer, coefficient, positions, step, max_new_tokens):
    """Top-2 logit gap of the reference path at generation ``step`` of one prompt."""
    from contextlib import nullcontext

    from workbench.model.generation import greedy_kwargs
    from workbench.steering import add_vector

    ids, mask = model.pad([prompt])
    ctx = (nullcontext() if vector is None else
           add_vector(model, vector, layers=layer, coefficient=coefficient, positions=positions))
    with ctx, torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, output_logits=True,
                             return_dict_in_generate=True, **greedy_kwargs(model, step + 1))
    top = out.logits[step][0].float().topk(2).values
    return float(top[0] - top[1])


def main() -> None:
    from workbench import load_model
    from workbench.directions import caa_vector, refusal_candidates, select_refusal_direction
    from workbench.model.engine import eos_ids, until_eos
    from workbench.model.generation import generate_ids
    from workbench.evaluation.templates import resolve_templates
    from workbench.geometry import remove_projection
    from workbench.jobs.audit import directions_config, load_attack, load_benign
    from workbench.jobs.config import build_config
    from workbench.jobs.directions import read_direction_inputs
    from workbench.steering import add_vector
    from workbench.steering.conditions import condition_delta, generate_conditions_ids

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--model", default=None)
    ap.add_argument("--attack-limit", type=int, default=None)
    ap.add_argument("--benign-limit", type=int, default=None)
    ap.add_argument("--behaviours", default=None, help="comma-separated")
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-val", type=int, default=None)
    ap.add_argument("--caa-limit", type=int, default=None)
    ap.add_argument("--rows", type=int, default=64, help="rows per batched generate call")
    ap.add_argument("--near-tie", type=float, default=1e-3,
                    help="a top-2 logit gap below this counts as float noise")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    overrides = dict(model=args.model, attack_limit=args.attack_limit,
                     benign_limit=args.benign_limit, max_new_tokens=args.max_new_tokens,
                     n_train=args.n_train, n_val=args.n_val, caa_limit=args.caa_limit,
                     behaviours=args.behaviours.split(",") if args.behaviours else None)
    cfg = build_config(args.preset, None, **overrides)
    dcfg = directions_config(cfg)
    inputs = read_direction_inputs(dcfg)
    model = load_model(cfg.model, device=cfg.device)
    tok = lambda items: model.tokenize_instructions([i.instruction for i in items])  # noqa: E731
    timings: dict[str, float] = {}

    cand, timings["refusal_candidates"] = _time(lambda: refusal_candidates(
        model, tok(inputs.harm_train), tok(inputs.safe_train), cfg.batch_size, False))
    sel_kw = dict(layers=dcfg.search_layers, positions=dcfg.search_positions,
                  batch_size=cfg.batch_size, progress=False)
    hv, sv = tok(inputs.harm_val), tok(inputs.safe_val)
    full, timings["selection_full"] = _time(
        lambda: select_refusal_direction(model, cand, hv, sv, **sel_kw))
    ordered, timings["selection_ordered"] = _time(
        lambda: select_refusal_direction(model, cand, hv, sv, search="ordered", **sel_kw))
    caa, timings["caa_vectors"] = _time(lambda: {
        b: caa_vector(model, p, batch_size=cfg.batch_size, progress=False)
        for b, p in inputs.pairs.items()})

    layer, r = full.layer, full.direction.double()
    conds = [(None, layer, 0.0)]
    for b in cfg.behaviours:
        v = caa[b][layer].double()
        for c in cfg.coefficients:
            conds += [(v.float(), layer, float(c)), (remove_projection(v, r).float(), layer,
                                                     float(c))]
    templates = resolve_templates(cfg.templates, cfg.template_files)
    attack, _ = load_attack(cfg)
    benign = load_benign(cfg, {i.instruction for i in inputs.safe_train + inputs.safe_val})
    texts = [t.apply(i.instruction) for t in templates for i in attack]
    texts += [i.instruction for i in benign]
    prompts = model.tokenize_instructions(texts)

    def reference():
        out = []
        for v, l, c in conds:
            if v is None:
                out.append(generate_ids(model, prompts, cfg.max_new_tokens, cfg.batch_size,
                                        progress=False))
            else:
                with add_vector(model, v, layers=l, coefficient=c,
                                positions=cfg.steer_positions):
                    out.append(generate_ids(model, prompts, cfg.max_new_tokens,
                                            cfg.batch_size, progress=False))
        return out

    batched_conds = [{} if v is None else {l: condition_delta(v, c)} for v, l, c in conds]
    ref, timings["generation_reference"] = _time(reference)
    eos = eos_ids(model)  # generate pads finished rows; the batched path stops at the end
    ref = [[until_eos(t, eos) for t in per_cond] for per_cond in ref]
    got, timings["generation_batched"] = _time(lambda: generate_conditions_ids(
        model, prompts, batched_conds, cfg.max_new_tokens, cfg.steer_positions,
        batch_size=args.rows, progress=False))

    differing, near_ties = [], 0
    for ci, (v, l, c) in enumerate(conds):
        for pi in range(len(prompts)):
            a, b = ref[ci][pi], got[ci][pi]
            if a == b:
                continue
            step = next(k for k, (x, y) in enumerate(zip(a, b)) if x != y)
            gap = top2_gap(model, prompts[pi], v, l, c, cfg.steer_positions, step,
                           cfg.max_new_tokens)
            near_ties += gap < args.near_tie
            differing.append({"condition": ci, "prompt": pi, "step": step, "top2_gap": gap})
    decode = lambda ids: model.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    text_equal = sum(decode(a) == decode(b) for x, y in zip(ref, got) for a, b in zip(x, y))

    unopt = timings["selection_full"] + timings["generation_reference"]
    opt = timings["selection_ordered"] + timings["generation_batched"]
    record = {
        "benchmark": "audit_stages", "preset": args.preset, "model": cfg.model,
        "n_conditions": len(conds), "n_prompts": len(prompts),
        "max_new_tokens": cfg.max_new_tokens, "rows_per_call": args.rows,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "unoptimised_s": round(unopt, 2), "optimised_s": round(opt, 2),
        "speedup_selection_plus_generation": round(unopt / opt, 3),
        "speedup_generation": round(timings["generation_reference"]
                                    / timings["generation_batched"], 3),
        "speedup_selection": round(timings["selection_full"] / timings["selection_ordered"], 3),
        "same_refusal_pick": (full.position, full.layer) == (ordered.position, ordered.layer),
        "candidates_fully_scored_ordered": sum(
            not s.reason.startswith("not scored") for s in ordered.scores),
        "candidates": len(full.scores),
        "generations": len(conds) * len(prompts), "identical_token_ids": len(conds) * len(
            prompts) - len(differing), "identical_texts": text_equal,
        "differing": differing, "near_tie_threshold": args.near_tie,
        "differing_near_ties": near_ties, "differing_not_near_ties": len(differing) - near_ties,
        "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "platform": platform.platform(),
                    "device": str(model.device),
                    "load_avg_1m": os.getloadavg()[0]},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out = Path(args.out or f"benchmarks/results/audit_{args.preset}_{cfg.model}.json")
    from workbench.runs import write_json

    write_json(out, record)
    print(json.dumps({k: v for k, v in record.items() if k != "differing"}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
