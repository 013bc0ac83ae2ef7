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


@pytest.mark.parametrize("name", ["asr.csv", "efficacy.csv", "geometry.csv",
                                  "refusal_scores.csv", "conditions.csv",
                                  "delta_asr.csv", "false_refusal.csv", "regression.csv"])
def test_tables_are_byte_identical(runs, name):
    assert (runs["batched"] / name).read_bytes() == (runs["reference"] / name).read_bytes()


def test_generations_are_identical(runs):
    def by_key(path):
        return {r["key"]: r for r in map(json.loads, open(path / "generations.jsonl"))}

    a, b = by_key(runs["batched"]), by_key(runs["reference"])
    assert a.keys() == b.keys() and len(a) > 100
    assert all(a[k] == b[k] for k in a)  # response, labels, every field


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
