"""Open-ended steering efficacy: choice parsing, the behaviour axis, and the audit's record."""

import numpy as np
import pytest

from workbench import WorkbenchError
from workbench.data import ContrastPair, embedded_contrast
from workbench.evaluation.open_ended import (
    axis_accuracy,
    choice_texts,
    fit_behaviour_axis,
    split_choices,
)

Q = "Do you agree?\n\nChoices:\n (A) Yes, I agree\n    with you.\n (B) No, I do not."


def test_split_choices_reads_stem_and_wrapped_options():
    stem, options = split_choices(Q)
    assert stem == "Do you agree?"
    assert options == {"A": "Yes, I agree with you.", "B": "No, I do not."}


@pytest.mark.parametrize("question", ["No choices here.", "Q?\n\nChoices:\n (A) only one",
                                      "\n\nChoices:\n (A) a\n (B) b"])
def test_split_choices_rejects_items_it_cannot_read(question):
    with pytest.raises(WorkbenchError, match="Choices|choices"):
        split_choices(question)


def test_choice_texts_follow_the_answer_letters():
    stems, m, n = choice_texts([ContrastPair(Q, "(B)", "(A)")])
    assert (stems, m, n) == (["Do you agree?"], ["No, I do not."], ["Yes, I agree with you."])
    with pytest.raises(WorkbenchError, match="not among the choices"):
        choice_texts([ContrastPair(Q, "(C)", "(A)")])


@pytest.mark.parametrize("behaviour", ["coordinate-other-ais", "corrigible-neutral-HHH",
                                       "hallucination", "myopic-reward", "refusal",
                                       "survival-instinct", "sycophancy"])
def test_every_embedded_contrast_item_has_two_readable_choices(behaviour):
    pairs = embedded_contrast(behaviour)
    stems, m, n = choice_texts(pairs)
    assert len(stems) == len(pairs) and all(stems) and all(m) and all(n)
    assert all(a != b for a, b in zip(m, n))


def test_behaviour_axis_against_a_hand_computation():
    rng = np.random.default_rng(0)
    m, n = rng.normal(size=(5, 8)) + 1.0, rng.normal(size=(5, 8))
    axis = fit_behaviour_axis(m, n)
    diff = m.mean(0) - n.mean(0)
    u = diff / np.sqrt((diff ** 2).sum())
    np.testing.assert_allclose(axis.direction, u)
    # the training means land on +1 and -1; the scale is linear in between
    np.testing.assert_allclose(axis.score(m).mean(), 1.0)
    np.testing.assert_allclose(axis.score(n).mean(), -1.0)
    hi, lo = m.mean(0) @ u, n.mean(0) @ u
    x = rng.normal(size=(3, 8))
    np.testing.assert_allclose(axis.score(x), (x @ u - (hi + lo) / 2) / ((hi - lo) / 2))
    assert axis_accuracy(axis, m, n) == np.mean(axis.score(m) > axis.score(n))
    assert axis_accuracy(axis, n, m) == np.mean(axis.score(n) > axis.score(m))


def test_behaviour_axis_bad_input():
    with pytest.raises(WorkbenchError, match="same mean"):
        fit_behaviour_axis(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(WorkbenchError, match="one shape"):
        fit_behaviour_axis(np.ones((2, 3)), np.ones((3, 3)))


def test_the_minilm_axis_reads_held_out_refusals():
    """On the real sentence embeddings, the refusal axis fitted on 40 items ranks the other 20
    items' refusing choice above the complying one almost always (a check the axis can fail)."""
    from workbench.evaluation.judges.trained import embed_texts

    _, m, n = choice_texts(embedded_contrast("refusal"))
    axis = fit_behaviour_axis(embed_texts(m[:40]), embed_texts(n[:40]))
    assert axis_accuracy(axis, embed_texts(m[40:]), embed_texts(n[40:])) >= 0.9


def test_open_ended_tokens_bad_input():
    from workbench.jobs.config import build_config

    with pytest.raises(WorkbenchError, match="open_ended_tokens is -1"):
        build_config("smoke", open_ended_tokens=-1)
