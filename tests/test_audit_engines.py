"""The batched engine against the reference path: same audit, byte for byte, on tiny-random."""

import json

import pytest

from workbench.evaluation.work import ENGINES, GenerationItem, Steer, plan_items
from workbench.jobs.audit import run_audit
from workbench.jobs.config import build_config


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    out = {}
    for engine in ENGINES:
        out[engine] = root / engine
        run_audit(build_config("smoke", out=str(out[engine]), progress=False, figures=False,
                               engine=engine, generation_batch=7))
    return out


@pytest.mark.parametrize("name", ["asr.csv", "false_refusal.csv"])
def test_tables_are_byte_identical(runs, name):
    assert (runs["batched"] / name).read_bytes() == (runs["reference"] / name).read_bytes()


@pytest.mark.parametrize("name", ["geometry.csv", "conditions.csv", "regression.csv",
                                  "delta_asr.csv"])
def test_vector_tables_agree_to_float_rounding(runs, name):
    """CAA vectors from the shared-prefix forward differ from the reference in rounding only,
    so their cosines and norms agree to float precision."""
    import pandas as pd

    a, b = (pd.read_csv(runs[e] / name) for e in ("batched", "reference"))
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    num = a.select_dtypes("number").columns
    pd.testing.assert_frame_equal(a.drop(columns=num), b.drop(columns=num))
    pd.testing.assert_frame_equal(a[num], b[num], rtol=1e-4, atol=1e-6)


def test_refusal_scores_agree_to_float_rounding_with_the_same_pick(runs):
    """The batched selection runs the system turn once per forward: the same candidates kept
    and discarded for the same reasons, scores equal to float rounding, the same direction."""
    import pandas as pd

    a, b = (pd.read_csv(runs[e] / "refusal_scores.csv", comment="#")
            for e in ("batched", "reference"))
    assert len(a) == len(b) > 0
    cols = ["position", "offset", "layer", "kept"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert [r.split(" ")[0] for r in a.reason.fillna("")] == \
        [r.split(" ")[0] for r in b.reason.fillna("")]
    pd.testing.assert_frame_equal(a[["bypass", "induce", "kl"]], b[["bypass", "induce", "kl"]],
                                  rtol=1e-4, atol=1e-5)
    picked = [json.loads((runs[e] / "run.json").read_text())["refusal"] for e in ("batched",
                                                                                 "reference")]
    assert picked[0]["layer"] == picked[1]["layer"]
    assert picked[0]["position"] == picked[1]["position"]


def test_efficacy_agrees_to_float_rounding(runs):
    """The batched efficacy readout runs prefix and eoi tokens as two calls: same numbers up
    to float rounding, same rows."""
    import pandas as pd

    a, b = (pd.read_csv(runs[e] / "efficacy.csv") for e in ("batched", "reference"))
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    num = a.select_dtypes("number").columns
    pd.testing.assert_frame_equal(a.drop(columns=num), b.drop(columns=num))
    # tiny-random barely steers, so the p-values test differences near the rounding level
    pvals = [c for c in num if c.startswith(("p_", "open_p_"))]
    probs = [c for c in num if c not in (*pvals, "delta_ci_low", "delta_ci_high")]
    pd.testing.assert_frame_equal(a[probs], b[probs], rtol=1e-4, atol=1e-6)
    pd.testing.assert_frame_equal(a[pvals], b[pvals], rtol=0, atol=1e-3)


def test_generations_are_identical(runs):
    def by_key(path):
        return {r["key"]: r for r in map(json.loads, open(path / "generations.jsonl"))}

    a, b = by_key(runs["batched"]), by_key(runs["reference"])
    assert a.keys() == b.keys() and len(a) > 100
    assert all(a[k] == b[k] for k in a)  # response, labels, every field


def test_open_ended_answers_are_identical(runs):
    """The open-ended check generates through each engine's own path (shared-prefix batches
    against one condition at a time under its hook): the same answers and scores."""
    a, b = ([json.loads(line) for line in open(runs[e] / "open_ended.jsonl")]
            for e in ("batched", "reference"))
    assert len(a) == len(b) > 0
    assert [r["answer"] for r in a] == [r["answer"] for r in b]
    assert [r["score"] for r in a] == pytest.approx([r["score"] for r in b], abs=1e-6)


def test_plan_covers_every_missing_cell_once_within_the_row_budget():
    prompts = [[1] * n for n in (5, 3, 9, 4, 7, 2)]
    conds = [None, Steer(1, None, 1.0), Steer(1, None, -1.0)]
    missing = [[0, 1, 2], [], [2], [0, 1, 2], [1], [0, 2]]
    want = {(p, c) for p, cs in enumerate(missing) for c in cs}
    for engine in ENGINES:
        items = plan_items(prompts, missing, conds, 4, "eoi", engine, batch_size=4)
        got = [(p, c) for it in items for c in it.tag[1] for p in it.tag[0]]
        assert want <= set(got)
        if engine == "reference":  # one condition per item, nothing generated twice
            assert sorted(got) == sorted(want) and all(len(it.conditions) == 1 for it in items)
        else:  # a prompt's missing conditions share its item; rows stay within the budget
            assert all(it.n_cells <= 4 or len(it.prompts) == 1 for it in items)
            assert len({p for it in items for p in it.tag[0]}) == sum(map(bool, missing))
        for it in items:
            assert isinstance(it, GenerationItem)
            assert it.prompts == [prompts[p] for p in it.tag[0]]
            assert it.conditions == [conds[c] for c in it.tag[1]]


def test_unknown_engine_is_one_clear_error():
    from workbench import WorkbenchError

    with pytest.raises(WorkbenchError, match="engine 'fast' is unknown"):
        build_config("smoke", engine="fast")
    with pytest.raises(WorkbenchError, match="unknown generation engine"):
        plan_items([[1]], [[0]], [None], 4, "eoi", "fast", 4)
