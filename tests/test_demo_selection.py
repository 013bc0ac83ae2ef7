"""The teaching demo's prompt rule (:func:`workbench.data.selection.most_refused`): the top n
held-out prompts by the unsteered model's refusal score."""

import pytest

from workbench import WorkbenchError
from workbench.data import Instruction, embedded_instructions
from workbench.data.selection import most_refused
from workbench.directions import prompt_refusal_scores


def test_picks_the_top_n_by_score_highest_first():
    items = ["a", "b", "c", "d", "e"]
    scores = [0.1, 2.0, -1.0, 0.5, 1.5]
    # by hand: b (2.0), e (1.5), d (0.5)
    assert most_refused(items, scores, 3) == ["b", "e", "d"]
    assert most_refused(items, scores, 5) == ["b", "e", "d", "a", "c"]


def test_never_picks_an_excluded_prompt():
    items = [Instruction("a", "h-1"), Instruction("b", "h-2"), Instruction("c", "h-3"),
             Instruction("d", "h-4")]
    scores = [3.0, 2.0, 1.0, 0.0]
    # the two best are the fitting prompts: the pick moves down to c, d
    picked = most_refused(items, scores, 2, exclude={"a", "b"})
    assert [i.id for i in picked] == ["h-3", "h-4"]
    assert all(isinstance(i, Instruction) for i in picked)


def test_ties_go_to_the_earlier_prompt_and_the_pick_is_deterministic():
    items = [f"p{k}" for k in range(6)]
    scores = [1.0, 2.0, 1.0, 2.0, 1.0, 0.0]
    first = most_refused(items, scores, 4)
    assert first == ["p1", "p3", "p0", "p2"]
    assert all(most_refused(items, scores, 4) == first for _ in range(3))


@pytest.mark.parametrize("items,scores,n,exclude,match", [
    (["a", "b", "c"], [1.0, 2.0, 3.0], 2, {"a", "b"}, "only 1 of 3 prompts"),
    (["a", "b"], [1.0], 1, set(), "2 items but 1 scores"),
    (["a", "b"], [1.0, 2.0], 0, set(), "n >= 1"),
    (["a", "b"], [1.0, float("nan")], 1, set(), "NaN"),
])
def test_bad_input_is_one_clear_error(items, scores, n, exclude, match):
    with pytest.raises(WorkbenchError, match=match):
        most_refused(items, scores, n, exclude=exclude)


def test_on_a_model_it_is_the_top_n_of_the_unsteered_scores(tiny):
    harmful = embedded_instructions("harmful")[:30]
    fit = {i.instruction for i in harmful[:10]}
    scores = prompt_refusal_scores(tiny, tiny.tokenize_instructions(
        [i.instruction for i in harmful]))
    picked = most_refused(harmful, scores, 5, exclude=fit)
    # by hand: sort the 20 held-out prompts by score, highest first
    held_out = sorted(range(10, 30), key=lambda k: -float(scores[k]))
    assert [i.id for i in picked] == [harmful[k].id for k in held_out[:5]]
    assert not fit & {i.instruction for i in picked}
