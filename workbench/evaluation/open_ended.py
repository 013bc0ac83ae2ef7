"""Open-ended steering efficacy: does a vector change what the model *says*, not only its letter?

The A/B check (:mod:`workbench.evaluation.efficacy`) reads one token. Here the held-out
contrast questions are asked without their choices, the model answers freely (steered and
unsteered), and each answer is placed on a **behaviour axis** in sentence-embedding space:

- the axis is fitted on the *training* pairs' answer texts (the choice texts of the items the
  vector was built from): the mean MiniLM embedding of the behaviour-matching answers minus
  that of the non-matching ones;
- an answer's score is its projection on the axis, shifted and scaled so that the training
  answers' matching mean sits at +1 and their non-matching mean at -1 (0 is half-way);
- the axis is validated on the held-out items' own choice texts: the share of items whose
  matching choice scores above its non-matching one (``axis_accuracy``; 0.5 is chance).

A vector steers open-ended when the paired change of the score (steered minus unsteered, same
question) has its coefficient's sign. Cheap: MiniLM is already a dependency, the generations
are short, and only unmitigated conditions are run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from workbench.data import ContrastPair
from workbench.errors import WorkbenchError

__all__ = ["BehaviourAxis", "OpenEnded", "axis_accuracy", "choice_texts", "fit_behaviour_axis",
           "open_ended_efficacy", "split_choices"]

_CHOICES = re.compile(r"\n\s*Choices:\s*\n", re.IGNORECASE)
_OPTION = re.compile(r"^\s*\(([A-Za-z])\)\s*(.*\S)\s*$")


def split_choices(question: str) -> tuple[str, dict[str, str]]:
    """The question without its choices, and each choice's text by letter.

    ``"Q?\\n\\nChoices:\\n (A) yes\\n (B) no"`` -> ``("Q?", {"A": "yes", "B": "no"})``.
    """
    parts = _CHOICES.split(question, maxsplit=1)
    if len(parts) != 2:
        raise WorkbenchError(f"contrast item has no 'Choices:' block: {question[:80]!r}; "
                             "open-ended efficacy needs CAA-style items with (A)/(B) choices")
    stem, block = parts[0].strip(), parts[1]
    options: dict[str, str] = {}
    for line in block.splitlines():
        m = _OPTION.match(line)
        if m:
            options[m.group(1).upper()] = m.group(2)
        elif line.strip() and options:  # a choice wrapped onto the next line
            last = next(reversed(options))
            options[last] = f"{options[last]} {line.strip()}"
    if not stem or len(options) < 2:
        raise WorkbenchError(f"contrast item's choices cannot be read: {question[:80]!r}; "
                             "write them one per line as ' (A) text'")
    return stem, options


def _letter(answer: str) -> str:
    m = re.search(r"[A-Za-z]", answer)
    if not m:
        raise WorkbenchError(f"answer {answer!r} names no choice letter; use '(A)' or '(B)'")
    return m.group(0).upper()


def choice_texts(pairs: Sequence[ContrastPair]) -> tuple[list[str], list[str], list[str]]:
    """Per item: the question stem, the matching choice's text, the non-matching choice's."""
    stems, matching, not_matching = [], [], []
    for p in pairs:
        stem, options = split_choices(p.question)
        m, n = _letter(p.matching), _letter(p.not_matching)
        if m not in options or n not in options:
            raise WorkbenchError(f"answer letters {m}/{n} are not among the choices "
                                 f"{sorted(options)} of {p.question[:60]!r}")
        stems.append(stem)
        matching.append(options[m])
        not_matching.append(options[n])
    return stems, matching, not_matching


@dataclass(frozen=True)
class BehaviourAxis:
    """Unit axis in embedding space, with the offset and scale that put the training answers'
    matching mean at +1 and non-matching mean at -1."""

    direction: Float[np.ndarray, " d"]
    midpoint: float
    half_gap: float

    def score(self, emb: Float[np.ndarray, "n d"]) -> Float[np.ndarray, " n"]:
        """Each embedding's position on the axis (+1: like a matching answer)."""
        return (np.asarray(emb, dtype=np.float64) @ self.direction - self.midpoint) / self.half_gap


def fit_behaviour_axis(matching: Float[np.ndarray, "n d"], not_matching: Float[np.ndarray, "n d"]
                       ) -> BehaviourAxis:
    """The axis from the mean matching minus the mean non-matching embedding."""
    m, n = np.asarray(matching, dtype=np.float64), np.asarray(not_matching, dtype=np.float64)
    if m.ndim != 2 or m.shape != n.shape or len(m) == 0:
        raise WorkbenchError(f"need matching and non-matching embeddings of one shape [n, d], "
                             f"got {m.shape} and {n.shape}")
    diff = m.mean(0) - n.mean(0)
    norm = float(np.linalg.norm(diff))
    if norm < 1e-9:
        raise WorkbenchError("matching and non-matching answers embed to the same mean; the "
                             "behaviour has no axis to score open-ended answers on")
    u = diff / norm
    hi, lo = float(m.mean(0) @ u), float(n.mean(0) @ u)
    return BehaviourAxis(direction=u, midpoint=(hi + lo) / 2, half_gap=(hi - lo) / 2)


def axis_accuracy(axis: BehaviourAxis, matching: Float[np.ndarray, "n d"],
                  not_matching: Float[np.ndarray, "n d"]) -> float:
    """Share of items whose matching answer scores above its non-matching one (0.5: chance)."""
    s_m, s_n = axis.score(matching), axis.score(not_matching)
    return float(np.mean(s_m > s_n)) if len(s_m) else float("nan")


@dataclass
class OpenEnded:
    """One behaviour's open-ended check: the questions, the answers and their axis scores
    (unsteered first, then one list per steering condition), the axis accuracy, and per
    condition the paired change of the score (``open_n``, ``open_delta``, ...)."""

    questions: list[str]
    answers: list[list[str]]
    scores: list[Float[np.ndarray, " n"]]
    accuracy: float
    fields: list[dict]


def open_ended_efficacy(model, train_pairs: Sequence[ContrastPair],
                        heldout: Sequence[ContrastPair], steers: Sequence, encoder,
                        max_new_tokens: int, positions: str = "eoi", engine: str = "batched",
                        batch_size: int = 16, rows: int = 128, progress: bool = False
                        ) -> OpenEnded:
    """Ask the ``heldout`` questions without their choices, answer greedily unsteered and under
    each steering condition (:class:`workbench.evaluation.work.Steer`), and score every answer
    on the behaviour axis fitted on ``train_pairs``' choice texts (embedded by ``encoder``).

    The batched engine answers every condition in shared batches of ``rows``; the reference
    engine answers one condition at a time under its hook, ``batch_size`` prompts at a time.
    """
    from workbench.steering.conditions import condition_delta, generate_conditions
    from workbench.evaluation.efficacy import paired_mean_delta
    from workbench.model.generation import generate
    from workbench.evaluation.judges.trained import embed_texts
    from workbench.steering import add_vector

    _, m_train, n_train = choice_texts(train_pairs)
    stems, m_held, n_held = choice_texts(heldout)
    axis = fit_behaviour_axis(embed_texts(m_train, encoder), embed_texts(n_train, encoder))
    accuracy = axis_accuracy(axis, embed_texts(m_held, encoder), embed_texts(n_held, encoder))
    prompts = model.tokenize_instructions(stems)
    if engine == "batched":
        deltas = [{}] + [{s.layer: condition_delta(s.vector, s.coefficient)} for s in steers]
        answers = generate_conditions(model, prompts, deltas, max_new_tokens, positions,
                                      batch_size=rows, progress=progress)
    else:
        answers = [generate(model, prompts, max_new_tokens, batch_size, progress=progress)]
        for s in steers:
            with add_vector(model, s.vector, layers=s.layer, coefficient=s.coefficient,
                            positions=positions):
                answers.append(generate(model, prompts, max_new_tokens, batch_size,
                                        progress=progress))
    scores = [axis.score(embed_texts(a, encoder)) for a in answers]
    fields = []
    for sc in scores[1:]:
        d = paired_mean_delta(scores[0], sc)
        fields.append({
            "open_n": d["n"], "open_score_baseline": d["mean_base"],
            "open_score": d["mean_steered"], "open_delta": d["delta"],
            "open_ci_low": d["ci_low"], "open_ci_high": d["ci_high"],
            "open_p_value": d["p_value"], "open_axis_accuracy": accuracy,
            "open_mde": d["mde"]})
    return OpenEnded(stems, answers, scores, accuracy, fields)
