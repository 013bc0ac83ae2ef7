"""How a run directory keys its conditions and generations (``generations.jsonl`` keys and
records, ``conditions.csv`` rows, the tables' grouping columns, ``vectors.safetensors``
names)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workbench.analysis.conditions import CONTROLS, base_method, is_placebo, is_random_removal

# the columns that name one steering condition, in key order
CONDITION_FIELDS = ("behaviour", "method", "layer", "coefficient", "mitigated")


def condition_of(row: Mapping) -> tuple:
    """A row's condition as a tuple ``(behaviour, method, layer, coefficient, mitigated)``."""
    return tuple(row[k] for k in CONDITION_FIELDS)


def condition_key(condition: Mapping | tuple) -> str:
    """A condition's key, ``behaviour|method|layer|coefficient|mitigated``, from a row (a
    generation record or a table row) or from its tuple (:func:`condition_of`)."""
    values = condition_of(condition) if isinstance(condition, Mapping) else condition
    return "|".join(map(str, values))


def generation_key(condition: str, template: str, prompt_id: str, split: str) -> str:
    """A generation's key in ``generations.jsonl``: condition key, template, prompt, split."""
    return f"{condition}|{template}|{prompt_id}|{split}"


@dataclass(frozen=True)
class Condition:
    """One steering condition of an audit; the baseline has behaviour "none"."""

    behaviour: str = "none"
    method: str = "none"
    layer: int | None = None
    coefficient: float = 0.0
    mitigated: bool = False

    @property
    def key(self) -> str:
        return condition_key((self.behaviour, self.method, self.layer, self.coefficient,
                              self.mitigated))

    @property
    def vector_key(self) -> tuple:
        return (self.behaviour, self.method, self.layer, self.mitigated)

    @property
    def unmitigated_key(self) -> tuple:
        """The vector this condition's vector was derived from (itself when unmitigated)."""
        return (self.behaviour, base_method(self.method), self.layer, False)

    @property
    def harmful_only(self) -> bool:
        """Placebo conditions answer the attack prompts only (no false-refusal readout)."""
        return is_placebo(self.behaviour) or is_random_removal(self.method)


def generation_record(cond: Condition, coefficient_abs: float, template: str, item,
                      split: str, response: str, label: str, labels: dict, refusal: bool,
                      comprehensible: bool) -> dict:
    """One line of ``generations.jsonl``: the condition, the prompt (``item``, an
    :class:`~workbench.data.Instruction`), the answer and its labels."""
    return {
        "key": generation_key(cond.key, template, item.id, split), "split": split,
        "behaviour": cond.behaviour, "control": cond.behaviour in CONTROLS,
        "placebo": is_placebo(cond.behaviour) or is_random_removal(cond.method),
        "method": cond.method, "layer": cond.layer, "coefficient": cond.coefficient,
        "coefficient_abs": coefficient_abs, "mitigated": cond.mitigated, "template": template,
        "prompt_id": item.id, "category": item.category, "instruction": item.instruction,
        "response": response, "refusal": refusal, "comprehensible": comprehensible,
        "label": label, "labels": labels,
    }


def vector_name(behaviour: str, method: str, mitigated: bool) -> str:
    """The name of a steered vector in ``vectors.safetensors``: ``<method>.<behaviour>``, with
    ``-mitigated`` after the method for the vector with the refusal component removed."""
    return f"{method}{'-mitigated' if mitigated else ''}.{behaviour}"
