"""At which norm-relative scale does each CAA vector steer its own A/B behaviour?

Takes a finished audit run (its CAA vectors, steering layer and held-out contrast pairs) and,
for each behaviour and signed scale ``s``, adds the vector at the steering layer with norm
``s * mean ||resid_pre||`` (the audit's ``norm`` coefficient scale) and reads, on the held-out
A/B pairs, the share of the A/B probability on the behaviour-matching letter (paired change
against no steering, t-test) and the A/B mass (the probability of either letter at all). A
vector that steers moves the share in its coefficient's direction while the mass stays up; a
mass near zero means the push broke the answer format instead. Forward passes only (no
generation): all scales of a behaviour run in shared batches.

    python benchmarks/efficacy_by_scale.py --run runs/audit-quick     # about 1 min on 2 cores
"""

from __future__ import annotations

import csv


def main() -> None:
    from workbench.steering.conditions import condition_delta
    from workbench.evaluation.efficacy import ab_probabilities_conditions, paired_mean_delta
    from workbench.jobs.audit import caa_behaviours
    from workbench.jobs.reopen import reopen_audit
    from sweep import signed_scales, sweep_arguments

    args = sweep_arguments(__doc__.splitlines()[0], "0.03,0.1,0.25,0.5,1.0").parse_args()
    run = reopen_audit(args.run)
    model, cfg, inputs = run.model, run.cfg, run.inputs
    layer = run.layer(args.layer)
    resid = run.resid_norm(layer)
    scales = signed_scales(args.scales)
    rows = []
    for b in caa_behaviours(cfg):
        pairs = inputs.heldout.get(b)
        if not pairs:
            continue
        v = run.directions.caa[b][layer].float()
        deltas = [{}] + [{layer: condition_delta(v, s * resid / float(v.norm()))}
                         for s in scales]
        tables = ab_probabilities_conditions(model, pairs, deltas, cfg.steer_positions,
                                             cfg.batch_size * 2)
        base = tables[0]
        for s, t in zip(scales, tables[1:]):
            d = paired_mean_delta(base["p_matching_norm"], t["p_matching_norm"])
            rows.append({"behaviour": b, "scale": s, "n": d["n"],
                         "p_matching_baseline": d["mean_base"], "p_matching": d["mean_steered"],
                         "delta": d["delta"], "ci_low": d["ci_low"], "ci_high": d["ci_high"],
                         "p_value": d["p_value"],
                         "ab_mass_baseline": float((base["p_matching"]
                                                    + base["p_not_matching"]).mean()),
                         "ab_mass": float((t["p_matching"] + t["p_not_matching"]).mean())})
    print(f"{cfg.model}: CAA vectors added at layer {layer} (eoi positions), mean residual "
          f"norm {resid:.2f}; held-out A/B pairs per behaviour: "
          f"{', '.join(f'{b} {len(p)}' for b, p in inputs.heldout.items())}")
    print("| behaviour | scale | n | p(matching) base → steered | Δ [95% CI] (pp) | p | "
          "A/B mass base → steered | steers |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        steers = r["p_value"] < 0.05 and r["delta"] * r["scale"] > 0
        print(f"| {r['behaviour']} | {r['scale']:+g} | {r['n']} | "
              f"{r['p_matching_baseline']:.0%} → {r['p_matching']:.0%} | "
              f"{100 * r['delta']:+.1f} [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}] | "
              f"{r['p_value']:.2g} | {r['ab_mass_baseline']:.0%} → {r['ab_mass']:.0%} | "
              f"{'yes' if steers else 'no'} |")
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
