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
    """The full search's rules applied by hand: lowest bypass among the kept candidates, else
    among those within the KL bound, else of all (with allow_fallback)."""
    kept = [s for s in scores if s.kl <= kl_threshold and s.induce >= induce_threshold]
    bounded = [s for s in scores if s.kl <= kl_threshold]
    pool = kept or bounded or scores
    rule = "filters" if kept else "kl-bounded" if bounded else "fallback"
    return min(pool, key=lambda s: s.bypass), rule


def _scored_by_ordered(by_bypass, kl_threshold, induce_threshold, top_k):
    """How many candidates the ordered search scores in full: in bypass order, up to the first
    kept one; past ``top_k`` only until one within the KL bound has been scored."""
    n = 0
    for rank, s in enumerate(by_bypass):
        if top_k is not None and rank >= top_k and any(
                t.kl <= kl_threshold for t in by_bypass[:rank]):
            break
        n += 1
        if s.kl <= kl_threshold and s.induce >= induce_threshold:
            break
    return n


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
                                       batch_size=4, progress=False, search="ordered",
                                       allow_fallback=True)
        want, rule = _full_pick(full.scores, kl_t, ind_t)
        assert (sel.position, sel.layer) == (want.position, want.layer)
        assert sel.rule == rule
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
    kw = dict(positions=[-2, -1], batch_size=4, progress=False, search="ordered")
    scored = lambda sel: [s for s in sel.scores  # noqa: E731
                          if not s.reason.startswith("not scored")]
    # nothing passes the induce filter, everything the KL bound: the k scored, lowest bypass
    sel = select_refusal_direction(tiny, cand, harm_val, safe_val, kl_threshold=math.inf,
                                   induce_threshold=math.inf, top_k=2, **kw)
    assert len(scored(sel)) == 2 and sel.rule == "kl-bounded"
    assert (sel.position, sel.layer) == (by_bypass[0].position, by_bypass[0].layer)
    assert all("outside the 2 lowest" in s.reason for s in sel.scores if s not in scored(sel))
    # only the lowest-KL candidate is within the bound: the cap never costs the KL bound, the
    # search goes on down the bypass order until it has scored that one
    low = min(full.scores, key=lambda s: s.kl)
    sel = select_refusal_direction(tiny, cand, harm_val, safe_val, kl_threshold=low.kl,
                                   induce_threshold=math.inf, top_k=1, **kw)
    assert (sel.position, sel.layer, sel.rule) == (low.position, low.layer, "kl-bounded")
    assert len(scored(sel)) == by_bypass.index(low) + 1
    # only the candidate ranked last passes every filter: scored as far as the rules say
    last = by_bypass[-1]
    sel = select_refusal_direction(tiny, cand, harm_val, safe_val, kl_threshold=last.kl,
                                   induce_threshold=last.induce, top_k=1,
                                   allow_fallback=True, **kw)
    assert len(scored(sel)) == _scored_by_ordered(by_bypass, last.kl, last.induce, 1)
    # nothing within the KL bound: an error that names the way out, unless allowed
    with pytest.raises(WorkbenchError, match="--allow-fallback"):
        select_refusal_direction(tiny, cand, harm_val, safe_val, kl_threshold=-1.0, top_k=1,
                                 **kw)
    sel = select_refusal_direction(tiny, cand, harm_val, safe_val, kl_threshold=-1.0, top_k=1,
                                   allow_fallback=True, **kw)
    assert sel.rule == "fallback" and len(scored(sel)) == len(full.scores)
    assert (sel.position, sel.layer) == (by_bypass[0].position, by_bypass[0].layer)
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
