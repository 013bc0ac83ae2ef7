"""The paired statistic of the steering-efficacy check against a hand computation."""

import math

import numpy as np
import pytest
from scipy import stats

from workbench import WorkbenchError
from workbench.evaluation.efficacy import paired_mean_delta


def test_paired_mean_delta_by_hand():
    base = np.array([0.20, 0.40, 0.55, 0.30, 0.50])
    steered = np.array([0.35, 0.42, 0.70, 0.31, 0.66])
    d = steered - base
    n, mean, sd = len(d), d.mean(), d.std(ddof=1)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    t = mean / (sd / math.sqrt(n))
    p = 2 * stats.t.sf(abs(t), n - 1)
    got = paired_mean_delta(base, steered)
    assert got["n"] == 5
    assert got["delta"] == pytest.approx(mean, abs=1e-12)
    assert got["mean_base"] == pytest.approx(base.mean()) and got["mean_steered"] == pytest.approx(
        steered.mean())
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((mean - half, mean + half), abs=1e-12)
    assert got["p_value"] == pytest.approx(p, rel=1e-9)
    # the smallest mean change this test finds with 80% power: at that change, the noncentral
    # t puts 80% of its mass beyond the two-sided critical values
    assert got["sd_diff"] == pytest.approx(sd, rel=1e-12)
    nc = got["mde"] / (sd / math.sqrt(n))
    crit = stats.t.ppf(0.975, n - 1)
    power = stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)
    assert power == pytest.approx(0.8, abs=1e-4)


def test_paired_mean_delta_edge_cases():
    same = paired_mean_delta([0.3, 0.4, 0.5], [0.3, 0.4, 0.5])
    assert same["delta"] == 0 and same["p_value"] == 1.0 and same["ci_low"] == same["ci_high"] == 0
    one = paired_mean_delta([0.3], [0.5])
    assert one["delta"] == pytest.approx(0.2) and math.isnan(one["p_value"])
    with pytest.raises(WorkbenchError, match="pair the same items"):
        paired_mean_delta([0.1, 0.2], [0.1])
