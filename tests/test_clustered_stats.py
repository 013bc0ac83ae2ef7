"""Clustered inference: each function against an independent computation or a simulation."""

import itertools
import math
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar

from workbench.errors import WorkbenchError
from workbench.evaluation.stats import (
    beyond_placebo,
    clustered_logistic_slope,
    clustered_paired_delta,
    paired_mde,
)


def _prompts(n_prompts, n_templates):
    return np.repeat([f"p{i}" for i in range(n_prompts)], n_templates)


def _naive_mcnemar_p(base, steered):
    b, s = np.asarray(base), np.asarray(steered)
    table = [[int((s & b).sum()), int((s & ~b).sum())], [int((~s & b).sum()),
                                                         int((~s & ~b).sum())]]
    return mcnemar(table, exact=True).pvalue


# --- clustered_paired_delta ---------------------------------------------------------------


def test_clustered_delta_point_values_by_hand():
    rng = np.random.default_rng(3)
    clusters = _prompts(12, 3)
    base = rng.random(36) < 0.3
    steered = rng.random(36) < 0.5
    res = clustered_paired_delta(list(base), list(steered), list(clusters), seed=1)
    assert res["n"] == 36 and res["n_clusters"] == 12
    assert res["base_rate"] == pytest.approx(np.mean(base))
    assert res["steered_rate"] == pytest.approx(np.mean(steered))
    assert res["delta"] == pytest.approx(np.mean(steered.astype(float) - base))
    assert res["ci_low"] <= res["delta"] <= res["ci_high"]
    assert 0 < res["p_value"] <= 1
    assert res == clustered_paired_delta(base, steered, clusters, seed=1)  # deterministic
    assert all(isinstance(res[k], float) for k in ("delta", "ci_low", "ci_high", "p_value"))


@pytest.mark.parametrize("steered_only,base_only", [(0, 0), (3, 3), (1, 6), (9, 2), (0, 5),
                                                    (11, 5), (16, 0)])
def test_one_row_per_cluster_is_exact_mcnemar(steered_only, base_only):
    # every cluster a single row: flips of the discordant pairs enumerate Binomial(m, 1/2),
    # and |#steered_only - #base_only| >= observed is exactly McNemar's doubled tail
    rows = ([(True, True)] * 4 + [(False, True)] * steered_only + [(True, False)] * base_only
            + [(False, False)] * 7)
    base, steered = [b for b, _ in rows], [s for _, s in rows]
    res = clustered_paired_delta(base, steered, range(len(rows)))
    table = [[4, steered_only], [base_only, 7]]
    assert res["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)


def test_one_row_per_cluster_monte_carlo_close_to_mcnemar():
    # 40 discordant pairs: past the exact limit, random flips estimate the same tail
    base = [False] * 26 + [True] * 14 + [False] * 10
    steered = [True] * 26 + [False] * 14 + [False] * 10
    res = clustered_paired_delta(base, steered, range(50), n_resamples=20000, seed=5)
    exact = mcnemar([[0, 26], [14, 10]], exact=True).pvalue
    assert res["p_value"] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20000))


def test_exact_enumeration_matches_brute_force_label_swaps():
    # 7 prompts with 2-3 templates each; swap the two conditions' labels on every subset of
    # prompts and recompute |delta| from scratch
    sizes = [2, 3, 2, 3, 3, 2, 2]
    clusters = np.repeat(np.arange(7), sizes)
    rng = np.random.default_rng(11)
    base = rng.random(len(clusters)) < 0.3
    steered = rng.random(len(clusters)) < 0.6
    observed = abs(Fraction(int(steered.sum()) - int(base.sum()), len(clusters)))
    as_extreme = 0
    for swap in itertools.product([False, True], repeat=7):
        flip = np.asarray(swap)[clusters]
        b = np.where(flip, steered, base)
        s = np.where(flip, base, steered)
        as_extreme += abs(Fraction(int(s.sum()) - int(b.sum()), len(clusters))) >= observed
    res = clustered_paired_delta(base, steered, clusters)
    assert res["p_value"] == pytest.approx(as_extreme / 2**7, rel=1e-12)
    assert res["p_value"] < 1  # the case is not degenerate


def test_cluster_bootstrap_weights_clusters_by_their_rows():
    # 10 prompts with 10 rows and no change, 10 prompts with 1 row that all rose: the
    # row-weighted delta is 10/110, while averaging per-prompt deltas would give 0.5
    clusters = np.concatenate([np.repeat(np.arange(10), 10), np.arange(10, 20)])
    base = np.zeros(110, dtype=bool)
    steered = np.concatenate([np.zeros(100, dtype=bool), np.ones(10, dtype=bool)])
    res = clustered_paired_delta(base, steered, clusters)
    assert res["delta"] == pytest.approx(10 / 110)
    assert 0 < res["ci_low"] < 10 / 110 < res["ci_high"] < 0.25
    # the ten rising prompts are ten positive flips: p = 2 / 2**10 exactly
    assert res["p_value"] == pytest.approx(2 / 2**10)


def test_clustered_delta_size_under_a_null_with_prompt_propensities():
    # each prompt has its own jailbreak propensity, shared by its 5 templates; base and
    # steered are iid given the prompt, so there is no effect. The sum over clusters lives
    # on a lattice and ties count as extreme, so the test is a little conservative: about
    # 0.033 in 4000 runs of this design.
    rng = np.random.default_rng(2024)
    clusters = _prompts(20, 5)
    rejections = 0
    for i in range(1000):
        propensity = np.repeat(rng.beta(0.6, 1.2, 20), 5)
        base = rng.random(100) < propensity
        steered = rng.random(100) < propensity
        rejections += clustered_paired_delta(base, steered, clusters, n_resamples=999,
                                             seed=i)["p_value"] <= 0.05
    assert 0.02 <= rejections / 1000 <= 0.07


def test_clustering_fixes_naive_mcnemar_under_shared_discordance():
    # null again (which condition a prompt favours is a coin flip), but a prompt that
    # reacts to steering does so under all its templates: rows are not independent
    rng = np.random.default_rng(7)
    clusters = _prompts(20, 5)
    clustered = naive = 0
    for i in range(400):
        reacts = rng.random(20) < 0.8
        up = rng.random(20) < 0.5
        p_base = np.where(reacts, np.where(up, 0.1, 0.9), 0.3)
        p_steer = np.where(reacts, np.where(up, 0.9, 0.1), 0.3)
        base = rng.random(100) < np.repeat(p_base, 5)
        steered = rng.random(100) < np.repeat(p_steer, 5)
        clustered += clustered_paired_delta(base, steered, clusters, n_resamples=999,
                                            seed=i)["p_value"] <= 0.05
        naive += _naive_mcnemar_p(base, steered) <= 0.05
    assert 0.02 <= clustered / 400 <= 0.08
    assert naive / 400 > 0.2 and naive > 3 * clustered  # about 0.30 against 0.05


def test_cluster_bootstrap_interval_covers_the_true_delta():
    # prompts drawn from a population whose propensities are uniform on [0.05, 0.6];
    # steering adds 0.1 to every prompt's propensity, so the true delta is exactly 0.1
    rng = np.random.default_rng(99)
    clusters = _prompts(30, 4)
    covered = excludes_zero = 0
    for i in range(200):
        propensity = np.repeat(rng.uniform(0.05, 0.6, 30), 4)
        base = rng.random(120) < propensity
        steered = rng.random(120) < propensity + 0.1
        res = clustered_paired_delta(base, steered, clusters, n_resamples=999, seed=i)
        covered += res["ci_low"] <= 0.1 <= res["ci_high"]
        excludes_zero += res["ci_low"] > 0
    assert 0.88 <= covered / 200 <= 0.99
    assert excludes_zero > 40  # and the interval has some power at this size


def test_clear_shift_excludes_zero():
    rng = np.random.default_rng(4)
    clusters = _prompts(40, 5)
    propensity = np.repeat(rng.uniform(0.05, 0.4, 40), 5)
    base = rng.random(200) < propensity
    steered = rng.random(200) < propensity + 0.35
    res = clustered_paired_delta(base, steered, clusters)
    assert res["ci_low"] > 0 and res["p_value"] < 0.001


def test_clustered_delta_edges_and_errors():
    empty = clustered_paired_delta([], [], [])
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("delta", "ci_low", "p_value"))
    same = clustered_paired_delta([True, False, True], [True, False, True], ["a", "a", "b"])
    assert same["p_value"] == 1.0 and same["delta"] == 0.0
    with pytest.raises(WorkbenchError, match="pair the same rows"):
        clustered_paired_delta([True, False], [True], ["a", "b"])
    with pytest.raises(WorkbenchError, match="one id per row"):
        clustered_paired_delta([True, False], [True, True], ["a"])
    with pytest.raises(WorkbenchError, match="not a boolean"):
        clustered_paired_delta([True, 2], [True, True], ["a", "b"])


# --- beyond_placebo -----------------------------------------------------------------------


def test_beyond_placebo_difference_and_rank_by_hand():
    steered = [1, 1, 0, 1, 0, 1]  # rate 4/6
    placebos = [[1, 0, 0, 1, 0, 0],  # 2/6
                [1, 1, 0, 1, 0, 1],  # 4/6: a tie
                [1, 1, 1, 1, 1, 0],  # 5/6
                [0, 0, 0, 1, 0, 0]]  # 1/6
    res = beyond_placebo(steered, placebos, ["a", "a", "b", "b", "c", "c"])
    assert res["k"] == 4 and res["n"] == 6 and res["n_clusters"] == 3
    assert res["placebo_rates"] == pytest.approx([2 / 6, 4 / 6, 5 / 6, 1 / 6])
    assert res["difference"] == pytest.approx(4 / 6 - (2 + 4 + 5 + 1) / 24)
    assert res["rank"] == 2.5  # two below, one tie
    assert (res["placebo_min"], res["placebo_max"]) == pytest.approx((1 / 6, 5 / 6))
    assert res["placebo_mean"] == pytest.approx(0.5)


def test_beyond_placebo_p_matches_brute_force_with_fractional_ties():
    # k = 3 makes d_c thirds; brute-force the sign flips with exact fractions
    rng = np.random.default_rng(8)
    clusters = np.repeat(np.arange(6), [2, 3, 2, 2, 3, 2])
    steered = rng.random(14) < 0.6
    placebos = rng.random((3, 14)) < 0.4
    d = [sum(Fraction(int(steered[r])) - Fraction(int(placebos[:, r].sum()), 3)
             for r in np.flatnonzero(clusters == c)) for c in range(6)]
    observed = abs(sum(d))
    hits = sum(abs(sum(sg * dc for sg, dc in zip(signs, d))) >= observed
               for signs in itertools.product([1, -1], repeat=6))
    res = beyond_placebo(steered, placebos, clusters)
    assert res["p_value"] == pytest.approx(hits / 2**6, rel=1e-12)
    assert res["difference"] == pytest.approx(float(observed) / 14 * np.sign(float(sum(d))))


def test_beyond_placebo_size_when_steered_is_another_placebo():
    rng = np.random.default_rng(31)
    clusters = _prompts(25, 4)
    rejections = 0
    for i in range(300):
        propensity = np.repeat(rng.beta(0.7, 1.5, 25), 4)
        draws = rng.random((6, 100)) < propensity  # steered + 5 placebos, same distribution
        p = beyond_placebo(draws[0], draws[1:], clusters, n_resamples=999, seed=i)["p_value"]
        rejections += p <= 0.05
    assert 0.015 <= rejections / 300 <= 0.09


def test_beyond_placebo_detects_a_real_effect():
    rng = np.random.default_rng(12)
    clusters = _prompts(30, 5)
    propensity = np.repeat(rng.uniform(0.05, 0.35, 30), 5)
    placebos = rng.random((8, 150)) < propensity
    steered = rng.random(150) < propensity + 0.4
    res = beyond_placebo(steered, placebos, clusters)
    assert res["p_value"] < 0.01 and res["ci_low"] > 0 and res["rank"] == 8
    assert res["ci_low"] < res["difference"] < res["ci_high"] < 1


def test_beyond_placebo_bad_shapes():
    with pytest.raises(WorkbenchError, match="add placebo"):
        beyond_placebo([True, False], [], ["a", "b"])
    with pytest.raises(WorkbenchError, match="same rows"):
        beyond_placebo([True, False], [[True, False, True]], ["a", "b"])
    with pytest.raises(WorkbenchError, match=r"\[k, n\]"):
        beyond_placebo([True, False], np.array([True, False]), ["a", "b"])
    with pytest.raises(WorkbenchError, match=r"\[k, n\]"):
        beyond_placebo([True, False], [True, False], ["a", "b"])
    with pytest.raises(WorkbenchError, match="one id per row"):
        beyond_placebo([True, False], [[True, False]], ["a"])


# --- clustered_logistic_slope -------------------------------------------------------------


def _dose_data(seed, n_prompts=30, n_templates=3, slope=0.9, intercept=-1.5, prompt_sd=0.5):
    rng = np.random.default_rng(seed)
    doses = {"baseline": 0.0, "v1": 0.4, "v2": 0.8, "v3": 1.2, "v4": 1.6, "v5": 2.0}
    rows = [(f"p{p}", f"p{p}/t{t}", v, x) for p in range(n_prompts)
            for t in range(n_templates) for v, x in doses.items()]
    frame = pd.DataFrame(rows, columns=["prompt", "row", "vector", "x"])
    bump = dict(zip(frame["prompt"].unique(), rng.normal(0, prompt_sd, n_prompts)))
    logit = intercept + slope * frame["x"] + frame["prompt"].map(bump)
    frame["y"] = (rng.random(len(frame)) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def test_logistic_slope_matches_a_direct_gee_fit():
    frame = _dose_data(1)
    res = clustered_logistic_slope(frame["y"], frame["x"], frame["prompt"], frame["vector"],
                                   n_boot=40)
    fit = smf.gee("y ~ x", groups="prompt", data=frame, family=sm.families.Binomial(),
                  cov_struct=sm.cov_struct.Exchangeable()).fit(cov_type="robust")
    assert res["slope"] == pytest.approx(fit.params["x"], rel=1e-6)
    assert res["intercept"] == pytest.approx(fit.params["Intercept"], rel=1e-6)
    assert res["p_value"] == pytest.approx(fit.pvalues["x"], rel=1e-4)
    low, high = fit.conf_int().loc["x"]
    assert (res["slope_ci_low"], res["slope_ci_high"]) == pytest.approx((low, high), rel=1e-6)
    assert res["odds_ratio"] == pytest.approx(math.exp(fit.params["x"]))
    prob = fit.predict(frame)
    assert res["ame"] == pytest.approx(float(np.mean(prob * (1 - prob))) * fit.params["x"],
                                       rel=1e-6)
    assert (res["n"], res["n_prompts"], res["n_vectors"]) == (len(frame), 30, 6)
    assert res["note"] is None


def test_logistic_slope_recovers_a_known_slope():
    frame = _dose_data(5, n_prompts=60, slope=1.2, prompt_sd=0.2)
    res = clustered_logistic_slope(frame["y"], frame["x"], frame["prompt"], frame["vector"],
                                   n_boot=0)
    # small prompt spread: the population-averaged slope is close to the conditional 1.2
    assert 0.9 < res["slope"] < 1.5 and res["p_value"] < 1e-6
    assert res["slope_ci_low"] < 1.2 < res["slope_ci_high"]
    assert 0 < res["ame"] < res["slope"] / 4  # p(1-p) <= 1/4
    flipped = clustered_logistic_slope(frame["y"], -frame["x"], frame["prompt"],
                                       frame["vector"], n_boot=0)
    assert flipped["slope"] == pytest.approx(-res["slope"], rel=1e-6)


def test_pigeonhole_bootstrap_interval_contains_the_gee_slope():
    contained = 0
    for seed in range(4):
        frame = _dose_data(100 + seed, n_prompts=25, n_templates=2)
        res = clustered_logistic_slope(frame["y"], frame["x"], frame["prompt"],
                                       frame["vector"], n_boot=60, seed=seed)
        assert res["boot_failed"] < 60 and res["boot_ci_low"] < res["boot_ci_high"]
        contained += res["boot_ci_low"] <= res["slope"] <= res["boot_ci_high"]
    assert contained == 4
    again = clustered_logistic_slope(frame["y"], frame["x"], frame["prompt"], frame["vector"],
                                     n_boot=60, seed=3)
    assert again == res


def test_pigeonhole_bootstrap_resamples_vectors_too():
    # every prompt has the same outcomes, so redrawing prompts alone reweights identical
    # blocks and leaves the fitted slope unchanged; only redrawing vectors moves it
    rng = np.random.default_rng(21)
    doses = np.array([0.0, 0.4, 0.8, 1.2, 1.6, 2.0])
    pattern = rng.random((4, 6)) < 1 / (1 + np.exp(-(-1.0 + 0.9 * doses)))  # template x dose
    y = np.tile(pattern.ravel(), 10).astype(int)
    x = np.tile(np.tile(doses, 4), 10)
    prompts = np.repeat(np.arange(10), 24)
    vectors = np.tile(np.arange(6), 40)
    res = clustered_logistic_slope(y, x, prompts, vectors, n_boot=60)
    assert res["boot_ci_high"] - res["boot_ci_low"] > 0.1
    one_vector_each = clustered_logistic_slope(y, x, prompts, np.zeros(240), n_boot=30)
    assert one_vector_each["boot_ci_high"] - one_vector_each["boot_ci_low"] < 1e-6


def test_logistic_slope_degenerate_inputs_give_nan_and_a_note():
    frame = _dose_data(2)
    constant = clustered_logistic_slope(np.zeros(len(frame)), frame["x"], frame["prompt"],
                                        frame["vector"])
    assert "constant" in constant["note"] and math.isnan(constant["slope"])
    assert all(math.isnan(constant[k]) for k in ("p_value", "ame", "boot_ci_low"))
    two_doses = clustered_logistic_slope(frame["y"], (frame["x"] > 1).astype(float),
                                         frame["prompt"], frame["vector"])
    assert "distinct" in two_doses["note"] and math.isnan(two_doses["slope"])
    one_prompt = clustered_logistic_slope(frame["y"], frame["x"], ["p"] * len(frame),
                                          frame["vector"])
    assert "prompt" in one_prompt["note"] and math.isnan(one_prompt["slope"])
    with pytest.raises(WorkbenchError, match="0/1"):
        clustered_logistic_slope(frame["y"] * 2, frame["x"], frame["prompt"], frame["vector"])


def test_logistic_slope_drops_non_finite_rows():
    frame = _dose_data(3)
    x = frame["x"].to_numpy().copy()
    x[:5] = np.nan
    res = clustered_logistic_slope(frame["y"], x, frame["prompt"], frame["vector"], n_boot=0)
    ref = clustered_logistic_slope(frame["y"][5:], frame["x"][5:], frame["prompt"][5:],
                                   frame["vector"][5:], n_boot=0)
    assert res["dropped"] == 5 and res["n"] == len(frame) - 5
    assert res["slope"] == pytest.approx(ref["slope"], rel=1e-9)


def test_logistic_slope_names_main_fit_warnings():
    # perfectly separated outcome: the fit cannot converge, which the note must say
    x = np.tile([0.0, 0.5, 1.0, 1.5, 2.0], 8)
    y = (x > 1.0).astype(int)
    prompts = np.repeat([f"p{i}" for i in range(8)], 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may leak out of the function
        res = clustered_logistic_slope(y, x, prompts, x.astype(str), n_boot=5)
    assert res["note"] is not None and "warned" in res["note"] and "separation" in res["note"]
    assert math.isnan(res["slope"])  # no finite slope describes separated data


# --- paired_mde ---------------------------------------------------------------------------


def _paired_t_power(effect, n, alpha):
    df = n - 1
    crit = sps.t.ppf(1 - alpha / 2, df)
    nc = effect * math.sqrt(n)
    # P(T > crit) + P(T < -crit); the lower tail via -T ~ nct(df, -nc), because scipy's
    # nct.cdf returns NaN that far into the tail
    return sps.nct.sf(crit, df, nc) + sps.nct.sf(crit, df, -nc)


@pytest.mark.parametrize("sd,n,alpha,power", [(0.3, 50, 0.05, 0.8), (1.0, 10, 0.05, 0.9),
                                              (0.12, 200, 0.01, 0.8), (2.5, 4, 0.1, 0.5)])
def test_paired_mde_against_noncentral_t(sd, n, alpha, power):
    mde = paired_mde(sd, n, alpha, power)
    upper = 8 / math.sqrt(n)  # power is ~1 at noncentrality 8
    effect = optimize.brentq(lambda e: _paired_t_power(e, n, alpha) - power, 1e-6, upper)
    assert mde == pytest.approx(effect * sd, rel=1e-4)
    assert _paired_t_power(mde / sd, n, alpha) == pytest.approx(power, abs=1e-4)


def test_paired_mde_edges():
    assert math.isnan(paired_mde(0.3, 1)) and math.isnan(paired_mde(float("nan"), 30))
    assert math.isnan(paired_mde(float("inf"), 30))
    assert paired_mde(0.0, 30) == 0.0
    assert paired_mde(0.6, 30) == pytest.approx(2 * paired_mde(0.3, 30))
    with pytest.raises(WorkbenchError, match="negative"):
        paired_mde(-0.1, 30)
    with pytest.raises(WorkbenchError, match="alpha"):
        paired_mde(0.3, 30, alpha=0)
