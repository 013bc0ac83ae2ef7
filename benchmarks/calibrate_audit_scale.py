"""At what norm-relative scale does the refusal-direction control move judged ASR both ways?

Takes a finished audit run (its refusal direction, steering layer, attack and benign prompts,
templates and judge), adds the unit refusal direction at the steering layer with norm
``s * mean ||resid_pre||`` for each scale ``s`` in both signs (every scale in one batched
generation), and prints, per signed scale: ASR under the run's judge and under the substring
judge (with Wilson 95% CIs), the paired change in judged ASR against no steering (exact
McNemar), the share of attack answers the substring judge sees as not refusing, and the
benign prompts' refusal rate. Too small a scale moves nothing; too large a one makes answers
nonsense, which a good judge does not count as a jailbreak. The quick preset's scale is
chosen here: docs/audit.md, "Choosing the scale".

``--ablation`` adds one more row: the published bypass intervention, the direction ablated
from every block input and every attention and MLP output at every position. It tells a
steering problem (subtracting the direction at one layer) from a model that simply has no
harmful help to give once its refusals are gone (ablation frees the answers, yet the judge
finds no more of them jailbroken).

    python benchmarks/calibrate_audit_scale.py --run runs/audit-quick     # about 4 min, 2 cores
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def candidate(text: str) -> tuple[int, int]:
    """``"-4:18"`` -> ``(-4, 18)``: a refusal candidate as an eoi offset and a layer."""
    try:
        offset, layer = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not OFFSET:LAYER; write it as --candidate=-4:18") from None
    return offset, layer


def main() -> None:
    from workbench.model.generation import generate
    from workbench.steering.conditions import generate_conditions
    from workbench.evaluation.judges import SubstringJudge, is_refusal, make_judge
    from workbench.evaluation.stats import paired_delta, proportion_ci
    from workbench.evaluation.templates import resolve_templates
    from workbench.jobs.audit import load_attack, load_benign
    from workbench.jobs.config import judge_spec
    from workbench.jobs.reopen import reopen_audit
    from sweep import signed_scales, sweep_arguments
    from workbench.steering import ablate_directions

    ap = sweep_arguments(__doc__.splitlines()[0], "0.125,0.25,0.375,0.5,0.75,1.0")
    ap.add_argument("--rows", type=int, default=64, help="rows per generate call")
    ap.add_argument("--answers", default=None,
                    help="JSONL of every attack answer with its scale and both judges' labels")
    ap.add_argument("--positions", default=None, choices=("eoi", "all"),
                    help="where the vector is added (default: the run's steer_positions)")
    ap.add_argument("--max-new-tokens", type=int, default=None,
                    help="answer length (default: the run's max_new_tokens)")
    ap.add_argument("--ablation", action="store_true",
                    help="add a row with the direction ablated everywhere (the published "
                         "bypass intervention) instead of added at one layer")
    ap.add_argument("--candidate", default=None, metavar="OFFSET:LAYER", type=candidate,
                    help="steer with another refusal candidate of the run instead of the "
                         "selected direction, e.g. -4:18 (eoi offset, layer)")
    args = ap.parse_args()

    run = reopen_audit(args.run)
    model, cfg, inputs, directions = run.model, run.cfg, run.inputs, run.directions
    layer = run.layer(args.layer)
    resid = run.resid_norm(layer)
    r_hat = run.refusal_unit(args.candidate)
    source = (f"refusal direction (layer {directions.selection.layer})" if args.candidate is None
              else "refusal candidate (offset {}, layer {})".format(*args.candidate))
    templates = resolve_templates(cfg.templates, cfg.template_files)
    attack, _ = load_attack(cfg)
    benign = load_benign(cfg, {i.instruction for i in inputs.safe_train + inputs.safe_val})
    harm_texts = [t.apply(i.instruction) for t in templates for i in attack]
    texts = harm_texts + [i.instruction for i in benign]
    ids = model.tokenize_instructions(texts)
    tokens = args.max_new_tokens or cfg.max_new_tokens
    scales = [0.0] + signed_scales(args.scales)
    conds = [{} if s == 0 else {layer: r_hat * (s * resid)} for s in scales]
    out = generate_conditions(model, ids, conds, tokens, args.positions or cfg.steer_positions,
                              batch_size=args.rows)
    rows_of = [("steer", s) for s in scales]
    if args.ablation:
        with ablate_directions(model, r_hat):
            out.append(generate(model, ids, max_new_tokens=tokens, batch_size=args.rows))
        rows_of.append(("ablation", float("nan")))
    judge, substring = make_judge(judge_spec(cfg), device=cfg.device), SubstringJudge()
    n_h = len(harm_texts)
    rows, kept, base_flags = [], [], None
    template_of = [t.name for t in templates for _ in attack]
    for (how, s), answers in zip(rows_of, out):
        h, b = answers[:n_h], answers[n_h:]
        lab, sub = judge.label(harm_texts, h), substring.label(harm_texts, h)
        kept += [{"intervention": how, "scale": s, "template": t, "request": q, "response": a,
                  "label": j, "label_substring": u}
                 for t, q, a, j, u in zip(template_of, harm_texts, h, lab, sub)]
        flags = [x == "jailbroken" for x in lab]
        base_flags = flags if base_flags is None else base_flags
        d = paired_delta(base_flags, flags)
        k, k_sub = sum(flags), sub.count("jailbroken")
        lo, hi = proportion_ci(k, n_h)
        rows.append({"intervention": how, "scale": s, "n": n_h, "asr": k / n_h, "ci_low": lo,
                     "ci_high": hi, "delta": d["delta"], "p_value": d["p_value"],
                     "asr_substring": k_sub / n_h,
                     "not_refusing": sum(not is_refusal(a) for a in h) / n_h,
                     "judge_incomprehensible": lab.count("incomprehensible") / n_h,
                     "benign_n": len(b), "benign_refusal": sum(map(is_refusal, b)) / len(b)})
    print(f"{cfg.model}: {source} added at layer {layer}, mean residual norm {resid:.2f}; "
          f"judge {judge.name}; n={n_h} attack answers, "
          f"{len(benign)} benign")
    print("| intervention | scale | ASR, judge [95% CI] | ΔASR (pp), McNemar p | ASR, substring "
          "| not refusing | incomprehensible (judge) | benign refusal |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        scale = "" if r["intervention"] == "ablation" else f"{r['scale']:+g}"
        print(f"| {r['intervention']} | {scale} | {r['asr']:.0%} [{r['ci_low']:.0%}, "
              f"{r['ci_high']:.0%}] | {100 * r['delta']:+.1f}, {r['p_value']:.2g} | "
              f"{r['asr_substring']:.0%} | {r['not_refusing']:.0%} | "
              f"{r['judge_incomprehensible']:.0%} | {r['benign_refusal']:.0%} |")
    if args.answers:
        Path(args.answers).write_text("".join(json.dumps(r) + "\n" for r in kept))
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
