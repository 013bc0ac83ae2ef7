"""Multiplicity-adjusted p-values: by hand, and the audit's family of ΔASR tests."""

import math
import random

import numpy as np
import pytest

from workbench import WorkbenchError
from workbench.evaluation.stats import adjust_pvalues
from workbench.analysis.tables import delta_rows


def _holm(p):
    """Holm's step-down adjustment written out: sort, multiply by (m - rank), running max."""
    order = np.argsort(p)
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def _bh(p):
    """Benjamini-Hochberg written out: p * m / rank, running min from the largest down."""
    order = np.argsort(p)[::-1]
    m = len(p)
    adj = np.empty(m)
    running = 1.0
    for k, i in enumerate(order):
        rank = m - k
        running = min(running, p[i] * m / rank)
        adj[i] = running
    return adj


def test_adjusted_p_values_equal_the_step_procedures_by_hand():
    rng = np.random.default_rng(0)
    for m in (1, 2, 8, 30):
        p = rng.uniform(0, 0.2, m) ** 2
        np.testing.assert_allclose(adjust_pvalues(p, "holm"), _holm(p), rtol=1e-12)
        np.testing.assert_allclose(adjust_pvalues(p, "bh"), _bh(p), rtol=1e-12)
    # untestable cells stay NaN and are not counted in the family
    got = adjust_pvalues([0.01, float("nan"), 0.04], "holm")
    assert math.isnan(got[1]) and got[0] == pytest.approx(0.02) and got[2] == pytest.approx(0.04)
    with pytest.raises(WorkbenchError, match="adjustment 'bonf' is unknown"):
        adjust_pvalues([0.1], "bonf")


def _records(n_prompts=12, seed=0):
    """Judged harmful answers for a baseline, two behaviours at two signs (plain and mitigated)
    and a control, over two templates."""
    rng = random.Random(seed)
    conds = [("none", "none", None, 0.0, False)] + [
        (b, "caa", 3, c, mit) for b in ("sycophancy", "myopic-reward", "refusal-direction")
        for c in (-1.0, 1.0) for mit in (False, True)]
    out = []
    for b, m, layer, c, mit in conds:
        rate = 0.2 if b == "none" else rng.uniform(0.1, 0.9)
        for tpl in ("direct", "prefix_injection"):
            for k in range(n_prompts):
                out.append({"behaviour": b, "method": m, "layer": layer, "coefficient": c,
                            "mitigated": mit, "template": tpl, "prompt_id": f"p{k}",
                            "label": "jailbroken" if rng.random() < rate else "safe",
                            "refusal": False})
    return out


def in_behaviour_family(row: dict) -> bool:
    """The family written out: unmitigated behaviour conditions (no control, no placebo),
    templates pooled."""
    return (row["template"] == "all" and not row["mitigated"]
            and row["behaviour"] not in ("refusal", "refusal-direction")
            and not row["behaviour"].startswith("placebo-"))


def test_the_family_is_the_unmitigated_behaviour_conditions_pooled_over_templates():
    recs = _records()
    rows = delta_rows(recs)
    family = [r for r in rows if in_behaviour_family(r)]
    assert family == [r for r in rows if r["family"] == "behaviour"]
    assert {(r["behaviour"], r["coefficient"]) for r in family} == {
        (b, c) for b in ("sycophancy", "myopic-reward") for c in (-1.0, 1.0)}
    np.testing.assert_allclose([r["p_holm"] for r in family],
                               _holm(np.array([r["p_value"] for r in family])))
    np.testing.assert_allclose([r["p_bh"] for r in family],
                               _bh(np.array([r["p_value"] for r in family])))
    # controls form their own family; mitigated and per-template rows are in none
    control = [r for r in rows if r.get("family") == "control"]
    assert len(control) == 2
    np.testing.assert_allclose([r["p_holm"] for r in control],
                               _holm(np.array([r["p_value"] for r in control])))
    assert all(math.isnan(r["p_holm"]) for r in rows
               if r["mitigated"] or r["template"] != "all")
    # the pairing does not depend on the order the records come in
    random.Random(1).shuffle(recs)
    again = {(r["behaviour"], r["coefficient"], r["template"], r["mitigated"]): r["p_holm"]
             for r in delta_rows(recs)}
    for r in family:
        assert again[(r["behaviour"], r["coefficient"], "all", False)] == r["p_holm"]
