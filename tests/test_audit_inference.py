"""The audit's inference, each piece against an independent computation: placebo directions,
the mitigation placebo, the regression's predictor, pairing, recovered shares, verdicts."""

import math
import random

import numpy as np
import pytest
import torch
from statsmodels.stats.contingency_tables import mcnemar

from workbench.directions import refusal_subspace
from workbench.evaluation import inference
from workbench.evaluation.stats import pooled_recovered_share
from workbench.geometry import random_orthogonal_directions, remove_projection, remove_random_component
from workbench.analysis.tables import delta_rows, regression_rows
from workbench.jobs.audit import condition_info
from workbench.rundir import Condition
from workbench.steering.mitigation import placebo_seed


def test_placebo_directions_are_unit_orthogonal_and_seeded():
    g = torch.Generator().manual_seed(3)
    r = torch.randn(64, generator=g, dtype=torch.float64)
    d = random_orthogonal_directions(5, 64, r[None], seed=11)
    assert d.shape == (5, 64)
    np.testing.assert_allclose(d.norm(dim=-1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose((d @ (r / r.norm())).numpy(), 0.0, atol=1e-12)
    assert torch.equal(d, random_orthogonal_directions(5, 64, r[None], seed=11))
    other = random_orthogonal_directions(5, 64, r[None], seed=12)
    assert (d * other).sum(-1).abs().max() < 0.9  # another seed, other directions
    # a 2-row span to avoid: orthogonal to both rows
    two = torch.randn(2, 64, generator=g, dtype=torch.float64)
    d2 = random_orthogonal_directions(3, 64, two, seed=0)
    np.testing.assert_allclose((d2 @ two.T).numpy(), 0.0, atol=1e-10)
    # distinct placebo draws get distinct seeds
    seeds = {placebo_seed(0, i, l, rm) for i in range(8) for l in range(30) for rm in (0, 1)}
    assert len(seeds) == 8 * 30 * 2


def test_the_mitigation_placebo_shortens_like_mitigation_but_keeps_the_refusal_part():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(128, generator=g, dtype=torch.float64)
    r_hat = r / r.norm()
    v = torch.randn(128, generator=g, dtype=torch.float64) + 0.4 * r_hat * 10
    mitigated = remove_projection(v, r)
    removed = float((v - mitigated).norm())
    assert removed == pytest.approx(abs(float(v @ r_hat)), rel=1e-12)
    placebo = remove_random_component(v, removed, r_hat[None], seed=5)
    # the same length as the mitigated vector, a removed part of the same size ...
    assert float(placebo.norm()) == pytest.approx(float(mitigated.norm()), rel=1e-10)
    assert float((v - placebo).norm()) == pytest.approx(removed, rel=1e-10)
    # ... taken orthogonally to r_hat, so the refusal component is untouched
    assert float(placebo @ r_hat) == pytest.approx(float(v @ r_hat), rel=1e-10)
    assert float((v - placebo) @ r_hat) == pytest.approx(0.0, abs=1e-10)
    assert not torch.allclose(placebo, remove_random_component(v, removed, r_hat[None], seed=6))


def test_the_subspace_basis_starts_from_the_selected_direction():
    g = torch.Generator().manual_seed(1)
    harm, safe = torch.randn(20, 32, generator=g), torch.randn(20, 32, generator=g)
    selected = torch.randn(32, generator=g, dtype=torch.float64)
    basis = refusal_subspace(harm, safe, 3, first=selected)
    np.testing.assert_allclose(basis[0].numpy(), (selected / selected.norm()).numpy(), atol=1e-12)
    np.testing.assert_allclose((basis @ basis.T).numpy(), np.eye(3), atol=1e-10)


def test_condition_info_projection_is_c_times_dot_over_the_residual_norm_by_hand():
    rng = np.random.default_rng(2)
    v, r = rng.normal(size=16), rng.normal(size=16)
    r_hat = r / np.linalg.norm(r)
    cond = Condition("sycophancy", "caa", 4, 0.5, False)
    vectors = {cond.vector_key: torch.tensor(v)}
    info = condition_info(cond, vectors, coefficient_abs=3.25, resid_norms={4: 40.0},
                          r_hat=torch.tensor(r_hat))
    assert info["projection"] == pytest.approx(3.25 * float(v @ r_hat) / 40.0, rel=1e-12)
    assert info["cosine"] == pytest.approx(float(v @ r_hat) / np.linalg.norm(v), rel=1e-12)
    base = condition_info(Condition(), {}, 0.0, {4: 40.0}, torch.tensor(r_hat))
    assert base["projection"] == 0.0


def _rec(cond, tpl, pid, label):
    b, m, layer, c, mit = cond
    return {"behaviour": b, "method": m, "layer": layer, "coefficient": c, "mitigated": mit,
            "template": tpl, "prompt_id": pid, "label": label, "refusal": label == "safe",
            "category": None}


BASE = ("none", "none", None, 0.0, False)


def test_delta_rows_pair_by_prompt_whatever_the_record_order():
    """Baseline jailbroken on p0-p5, steered on p4-p11: 2 concordant-yes, 4 base-only,
    8 steered-only per template; the per-template p is McNemar's on that table by hand."""
    steer = ("sycophancy", "caa", 3, 1.0, False)
    recs = []
    for tpl in ("direct", "refusal_suppression"):
        for k in range(16):
            recs.append(_rec(BASE, tpl, f"p{k}", "jailbroken" if k < 6 else "safe"))
            recs.append(_rec(steer, tpl, f"p{k}", "jailbroken" if 4 <= k < 12 else "safe"))
    random.Random(0).shuffle(recs)
    rows = {(r["template"]): r for r in delta_rows(recs) if r["behaviour"] == "sycophancy"}
    want = mcnemar([[2, 6], [4, 4]], exact=True).pvalue
    assert rows["direct"]["p_value"] == pytest.approx(want)
    assert rows["direct"]["delta_asr"] == pytest.approx((8 - 6) / 16)
    assert rows["all"]["n"] == 32 and rows["all"]["n_prompts"] == 16
    # renaming the prompts in another order changes nothing
    rename = {f"p{k}": f"q{(7 * k) % 16}" for k in range(16)}
    again = [dict(r, prompt_id=rename[r["prompt_id"]]) for r in recs]
    rows2 = {(r["template"]): r for r in delta_rows(again) if r["behaviour"] == "sycophancy"}
    for tpl in rows:
        assert rows2[tpl]["p_value"] == pytest.approx(rows[tpl]["p_value"])
        assert rows2[tpl]["delta_asr"] == rows[tpl]["delta_asr"]


def _scenario(n=24):
    """A behaviour that raises ASR strongly at +1 (mitigation undoes most of it, the placebo
    removal nothing), one that does nothing, one that breaks answers, and 4 placebos."""
    big = ("sycophancy", "caa", 3, 1.0, False)
    big_mit = ("sycophancy", "caa", 3, 1.0, True)
    big_rm = ("sycophancy", "caa+random-removal", 3, 1.0, True)
    null = ("myopic-reward", "caa", 3, 1.0, False)
    broke = ("survival-instinct", "caa", 3, 1.0, False)
    placebos = [(f"placebo-{i}", "random", 3, 1.0, False) for i in range(1, 5)]
    recs = []
    for tpl in ("direct", "prefix_injection"):
        for k in range(n):
            pid = f"p{k}"
            recs.append(_rec(BASE, tpl, pid, "jailbroken" if k % 6 == 0 else "safe"))
            recs.append(_rec(big, tpl, pid, "jailbroken" if k % 6 != 5 else "safe"))
            recs.append(_rec(big_mit, tpl, pid, "jailbroken" if k % 3 == 0 else "safe"))
            recs.append(_rec(big_rm, tpl, pid, "jailbroken" if k % 6 != 5 else "safe"))
            recs.append(_rec(null, tpl, pid, "jailbroken" if k % 6 == 0 else "safe"))
            recs.append(_rec(broke, tpl, pid, "incomprehensible" if k % 4 else "safe"))
            for i, p in enumerate(placebos):
                recs.append(_rec(p, tpl, pid, "jailbroken" if (k + i) % 6 == 0 else "safe"))
    return recs


def test_verdicts_recovered_shares_and_the_placebo_band():
    rows = {(r["behaviour"], r["method"], r["mitigated"]): r
            for r in delta_rows(_scenario()) if r["template"] == "all"}
    big = rows[("sycophancy", "caa", False)]
    assert big["verdict"] == "specific" and big["p_holm"] < 0.05
    assert big["placebo_k"] == 4 and big["placebo_rank"] == 4
    placebo_asr = np.mean([1 / 6] * 4)  # each placebo: 8 of 48 rows jailbroken
    assert big["beyond_placebo"] == pytest.approx(big["asr"] - placebo_asr)
    assert rows[("myopic-reward", "caa", False)]["verdict"] == "no effect"
    assert rows[("survival-instinct", "caa", False)]["verdict"] == "breaks answers"
    mit = rows[("sycophancy", "caa", True)]
    by_hand = (big["asr"] - mit["asr"]) / (big["asr"] - big["baseline_asr"])
    assert mit["recovered_share"] == pytest.approx(by_hand)
    assert mit["mitigation_delta"] == pytest.approx(mit["asr"] - big["asr"])
    assert mit["p_mitigation_holm"] < 0.05
    removal = rows[("sycophancy", "caa+random-removal", True)]
    assert removal["mitigation_delta"] == 0 and removal["p_mitigation"] == 1.0


def test_no_recovered_share_without_an_effect():
    null = ("myopic-reward", "caa", 3, 1.0, False)
    recs = []
    for tpl in ("direct", "prefix_injection"):
        for k in range(12):
            lab = "jailbroken" if k % 3 == 0 else "safe"
            recs += [_rec(BASE, tpl, f"p{k}", lab), _rec(null, tpl, f"p{k}", lab),
                     _rec(("myopic-reward", "caa", 3, 1.0, True), tpl, f"p{k}", "safe")]
    (mit,) = [r for r in delta_rows(recs) if r["mitigated"] and r["template"] == "all"]
    assert math.isnan(mit["recovered_share"])


def test_pooled_recovered_share_is_a_ratio_of_sign_aligned_sums_by_hand():
    rng = np.random.default_rng(4)
    n = 40
    base = rng.random((3, n)) < 0.2
    base[:] = base[0]
    steered = np.stack([rng.random(n) < 0.7, rng.random(n) < 0.05, rng.random(n) < 0.6])
    mitigated = np.stack([rng.random(n) < 0.4, rng.random(n) < 0.15, rng.random(n) < 0.5])
    clusters = [f"p{i // 2}" for i in range(n)]
    res = pooled_recovered_share(base, steered, mitigated, clusters, n_resamples=500)
    s, b, m = steered.mean(1), base.mean(1), mitigated.mean(1)
    sign = np.sign(s - b)
    assert res["share"] == pytest.approx(float((sign * (s - m)).sum() / (sign * (s - b)).sum()))
    assert res["ci_low"] < res["share"] < res["ci_high"]
    assert res["n_clusters"] == 20


def test_the_regression_predictor_is_each_conditions_projection_by_hand():
    recs = _scenario(12)
    conds = {inference.condition_of(r) for r in recs}
    proj = {c: 0.1 * (i + 1) for i, c in enumerate(sorted(conds, key=str))}
    info = {"|".join(map(str, c)): {"projection": x} for c, x in proj.items()}
    by = inference.answers_by_condition(recs)
    beh = [c for c in by if c[0] in ("sycophancy", "myopic-reward", "survival-instinct")
           and not c[4]]
    y, x, prompts, vectors = inference.regression_data(by, beh, proj, str)
    want_x = [0.0] * 24 + [proj[c] for c in beh for _ in range(24)]
    assert x == want_x and len(set(prompts)) == 12 and len(set(vectors)) == 4
    fits = {r["fit"]: r for r in regression_rows(recs, info)}
    assert fits["behaviours"]["n"] == 24 * 4 and fits["behaviours"]["n_prompts"] == 12
    # the mitigated vectors join the second fit; the placebos and removals join none
    assert fits["behaviours+mitigated"]["n"] == 24 * 5


def test_projection_pcs_are_exact_and_ignore_the_global_rng():
    """projections.csv's PCs are the exact SVD of the centred activations, whatever state
    numpy's global RNG is in (sklearn's randomized solver, its default for wide data, drew from
    it and moved the sixth digit between runs)."""
    from workbench.analysis.tables import projection_rows

    rng = np.random.default_rng(0)
    harm, safe = (torch.tensor(rng.normal(size=(n, 1536))) for n in (90, 80))
    direction = torch.tensor(rng.normal(size=1536))
    args = (harm, safe, direction, 3, list(range(90)), list(range(80)), [None] * 90)
    np.random.seed(1)
    first = projection_rows(*args)
    np.random.seed(2)
    assert projection_rows(*args) == first
    x = torch.cat([harm, safe]).numpy()
    centred = x - x.mean(0)
    vt = np.linalg.svd(centred, full_matrices=False)[2]
    for k in range(3):
        got = np.array([r[f"pc{k + 1}"] for r in first])
        np.testing.assert_allclose(np.abs(got), np.abs(centred @ vt[k]), rtol=1e-9, atol=1e-9)
