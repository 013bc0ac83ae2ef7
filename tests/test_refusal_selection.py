"""Refusal-direction scores and selection rules against hand computations."""

import math

import numpy as np
import pytest
import torch

from workbench import WorkbenchError

from workbench.directions.refusal import (
    CandidateScore,
    candidate_scores,
    discard_reason,
    layer_cut,
    pick_candidate,
)
from workbench.model.logprobs import kl_divergence, refusal_score


def _logprobs(probs):
    return torch.log(torch.tensor(probs, dtype=torch.float64))


def test_refusal_score_by_hand():
    # vocabulary of 4; tokens 0 and 2 are refusal tokens
    probs = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.25, 0.125, 0.125]]
    got = refusal_score(_logprobs(probs), [0, 2])
    for row, g in zip(probs, got):
        p = row[0] + row[2]
        assert float(g) == pytest.approx(math.log(p) - math.log(1 - p), abs=1e-12)
    # p_R = 0.4 -> log(0.4/0.6) < 0; p_R = 0.625 -> > 0
    assert float(got[0]) == pytest.approx(math.log(2 / 3), abs=1e-12)
    assert float(got[1]) == pytest.approx(math.log(0.625 / 0.375), abs=1e-12)


def test_kl_divergence_by_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    q = np.array([[0.5, 0.3, 0.2], [0.25, 0.25, 0.5]])
    want = (p * np.log(p / q)).sum(-1)
    got = kl_divergence(_logprobs(p.tolist()), _logprobs(q.tolist()))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
    assert float(got[1]) == pytest.approx(0.0, abs=1e-15)
    assert float(kl_divergence(_logprobs(q.tolist()), _logprobs(p.tolist()))[0]) != pytest.approx(
        float(got[0]))  # not symmetric: the order (base || other) matters


def test_candidate_scores_aggregate_means():
    rid = [1]
    ablated_harm = _logprobs([[0.5, 0.5], [0.9, 0.1]])
    base_safe = _logprobs([[0.8, 0.2], [0.6, 0.4]])
    ablated_safe = _logprobs([[0.7, 0.3], [0.6, 0.4]])
    induced_safe = _logprobs([[0.2, 0.8], [0.4, 0.6]])
    bypass, induce, kl = candidate_scores(rid, base_safe, ablated_harm, ablated_safe, induced_safe)
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    assert bypass == pytest.approx((logit(0.5) + logit(0.1)) / 2, abs=1e-12)
    assert induce == pytest.approx((logit(0.8) + logit(0.6)) / 2, abs=1e-12)
    kl0 = 0.8 * math.log(0.8 / 0.7) + 0.2 * math.log(0.2 / 0.3)
    assert kl == pytest.approx(kl0 / 2, abs=1e-12)


def test_layer_cut_matches_reference():
    # the reference discards layer >= int(0.8 * n_layers): 0-18 stay of 24, 0-25 of 32
    assert layer_cut(24) == 19 and layer_cut(32) == 25 and layer_cut(4) == 3
    assert discard_reason(19, -1.0, 1.0, 0.01, layer_cut(24)).startswith("layer 19")
    assert discard_reason(18, -1.0, 1.0, 0.01, layer_cut(24)) == ""


@pytest.mark.parametrize("bypass,induce,kl,reason", [
    (float("nan"), 1.0, 0.0, "nan score"),
    (-1.0, float("nan"), 0.0, "nan score"),
    (-1.0, 1.0, float("nan"), "nan score"),
    (-1.0, 1.0, 0.11, "kl 0.110 > 0.1"),
    (-1.0, 1.0, 0.1, ""),  # the threshold itself passes (kl > 0.1 discards)
    (-1.0, -0.01, 0.0, "induce -0.010 < 0.0"),
    (-1.0, 0.0, 0.0, ""),  # induce = 0 passes (induce < 0 discards)
])
def test_discard_rules(bypass, induce, kl, reason):
    assert discard_reason(3, bypass, induce, kl, cut=10) == reason


def _score(layer, bypass, induce=1.0, kl=0.0, cut=10):
    reason = discard_reason(layer, bypass, induce, kl, cut)
    return CandidateScore(0, -1, layer, bypass, induce, kl, not reason, reason)


def test_lowest_bypass_among_kept_wins():
    scores = [_score(1, -3.0, induce=-1.0),  # lowest bypass, but fails induce
              _score(2, -2.0, kl=0.5),  # fails kl
              _score(3, -1.0), _score(4, -1.5), _score(5, 0.5)]
    best, rule = pick_candidate(scores)
    assert rule == "filters" and best.layer == 4
    # none kept: the induce filter is relaxed, the KL bound is not
    none_kept = [_score(1, -3.0, induce=-1.0, kl=0.05), _score(2, float("nan")),
                 _score(3, -4.0, kl=1.0), _score(4, -2.0, induce=-1.0, kl=0.1)]
    best, rule = pick_candidate(none_kept)
    assert rule == "kl-bounded" and best.layer == 1
    best, rule = pick_candidate(none_kept, kl_threshold=0.01, allow_fallback=True)
    assert rule == "fallback" and best.layer == 3  # the lowest finite bypass
    with pytest.raises(WorkbenchError, match="no refusal-direction candidate keeps KL within "
                                             "0.01 .*--allow-fallback"):
        pick_candidate(none_kept, kl_threshold=0.01)
    with pytest.raises(WorkbenchError, match="NaN score"):
        pick_candidate([_score(2, float("nan"))], allow_fallback=True)
