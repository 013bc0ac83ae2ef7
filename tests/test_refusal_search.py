"""The ordered refusal search picks what the full search picks, scoring fewer candidates."""

import math

import pytest

from workbench import WorkbenchError
from workbench.data import embedded_instructions
from workbench.directions import refusal_candidates, select_refusal_direction


@pytest.fixture(scope="module")
def searched(tiny):
    tok = lambda kind, a, b: tiny.tokenize_instructions(  # noqa: E731
        [i.instruction for i in embedded_instructions(kind)[a:b]])
    harm, safe = tok("harmful", 0, 12), tok("harmless", 0, 12)
    harm_val, safe_val = tok("harmful", 12, 18), tok("harmless", 12, 18)
    cand = refusal_candidates(tiny, harm, safe, batch_size=6, progress=False)
    # every candidate scored, no filter: the raw scores the full search would filter
    full = select_refusal_direction(tiny, cand, harm_val, safe_val, kl_threshold=math.inf,
                                    induce_threshold=-math.inf, positions=[-2, -1],
                                    batch_size=4, progress=False)
    return cand, harm_val, safe_val, full


def _full_pick(scores, kl_threshold, induce_threshold):
    """The full search's rule applied by hand: lowest bypass among the kept candidates."""
    kept = [s for s in scores if s.kl <= kl_threshold and s.induce >= induce_threshold]
    pool = kept or scores
    return min(pool, key=lambda s: s.bypass)


def test_ordered_search_picks_the_full_search_candidate(tiny, searched):
    cand, harm_val, safe_val, full = searched
    kls = sorted(s.kl for s in full.scores)
    induces = sorted(s.induce for s in full.scores)
    n_grid = len(full.scores)
    fewer = 0
    # thresholds that keep everything, some, one, or nothing
    for kl_t, ind_t in [(math.inf, -math.inf), (kls[len(kls) // 2], -math.inf),
                        (kls[0], -math.inf), (math.inf, induces[len(induces) // 2]),
                        (kls[len(kls) // 3], induces[len(induces) // 3]), (-1.0, -math.inf)]:
        sel = select_refusal_direction(tiny, cand, harm_val, safe_val, kl_threshold=kl_t,
                                       induce_threshold=ind_t, positions=[-2, -1],
                                       batch_size=4, progress=False, search="ordered")
        want = _full_pick(full.scores, kl_t, ind_t)
        assert (sel.position, sel.layer) == (want.position, want.layer)
        assert sel.filters_passed == any(s.kl <= kl_t and s.induce >= ind_t
                                         for s in full.scores)
        scored = [s for s in sel.scores if not s.reason.startswith("not scored")]
        by_key = {(s.position, s.layer): s for s in full.scores}
        for s in scored:  # fully scored candidates carry exactly the full search's numbers
            ref = by_key[s.position, s.layer]
            assert (s.bypass, s.kl, s.induce) == (ref.bypass, ref.kl, ref.induce)
        fewer += len(scored) < n_grid
        assert len(sel.scores) == n_grid
    assert fewer >= 3  # it does save work


def test_unknown_search_is_a_clear_error(tiny, searched):
    cand, harm_val, safe_val, _ = searched
    with pytest.raises(WorkbenchError, match="refusal search"):
        select_refusal_direction(tiny, cand, harm_val, safe_val, search="fast", progress=False)


def test_top_k_scores_at_most_k_and_picks_among_them(tiny, searched):
    cand, harm_val, safe_val, full = searched
    by_bypass = sorted(full.scores, key=lambda s: s.bypass)
    # nothing passes: the pick is the lowest bypass among the k scored, as in the full search
    sel = select_refusal_direction(tiny, cand, harm_val, safe_val, kl_threshold=-1.0,
                                   positions=[-2, -1], batch_size=4, progress=False,
                                   search="ordered", top_k=2)
    scored = [s for s in sel.scores if not s.reason.startswith("not scored")]
    assert len(scored) == 2 and not sel.filters_passed
    assert (sel.position, sel.layer) == (by_bypass[0].position, by_bypass[0].layer)
    assert all("outside the 2 lowest" in s.reason for s in sel.scores if s not in scored)
    # only the candidate ranked last passes: top_k stops short of it, the full search finds it
    last = by_bypass[-1]
    sel = select_refusal_direction(tiny, cand, harm_val, safe_val, kl_threshold=last.kl,
                                   induce_threshold=last.induce, positions=[-2, -1],
                                   batch_size=4, progress=False, search="ordered", top_k=1)
    assert sum(not s.reason.startswith("not scored") for s in sel.scores) == 1
    with pytest.raises(WorkbenchError, match="top_k is 0"):
        select_refusal_direction(tiny, cand, harm_val, safe_val, search="ordered", top_k=0,
                                 progress=False)


def test_shared_prefix_scores_every_candidate_within_rounding(tiny, searched):
    """Running the system turn once per forward changes each candidate's scores by float
    rounding only, so the full search with it keeps the same pick."""
    cand, harm_val, safe_val, full = searched
    shared = select_refusal_direction(tiny, cand, harm_val, safe_val, kl_threshold=math.inf,
                                      induce_threshold=-math.inf, positions=[-2, -1],
                                      batch_size=4, progress=False, share_prefix=True)
    assert (shared.position, shared.layer) == (full.position, full.layer)
    for s, ref in zip(shared.scores, full.scores):
        assert (s.position, s.layer) == (ref.position, ref.layer)
        for a, b in ((s.bypass, ref.bypass), (s.induce, ref.induce), (s.kl, ref.kl)):
            assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
