"""SafeSteer evaluation: the conditions, their steering, the prompts each answers, and judging.

Every condition (the unsteered baseline, then method x category x layer x multiplier) answers
its category's held-out harmful prompts (the baseline: every category's) and the benign
held-out prompts. Answers are judged (configured judge and substring), checked for refusal and
comprehensibility, and scored for perplexity under the unsteered model.
"""

from __future__ import annotations

import itertools
from collections.abc import Container, Sequence
from dataclasses import dataclass

import torch

from workbench.errors import WorkbenchError
from workbench.evaluation.judges import is_comprehensible, is_refusal
from workbench.evaluation.work import GenerationItem
from workbench.safesteer.data import CategoryData
from workbench.safesteer.quality import response_perplexity
from workbench.safesteer.steering import add_category_vector, add_neuron_vector, scale_neurons
from workbench.safesteer.steering_set import SteeringSet
from workbench.safesteer.texts import judge_labels


@dataclass(frozen=True)
class Condition:
    """One evaluation condition; the unsteered baseline has method "none"."""

    method: str = "none"
    category: str = "none"
    layer: int | None = None
    multiplier: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.method}|{self.category}|{self.layer}|{self.multiplier}"


def conditions(categories: list[str], layers: list[int], methods: Sequence[str],
               multipliers: Sequence[float], suppress_scales: Sequence[float]) -> list[Condition]:
    """The baseline, then every method x category x layer x multiplier (scale for suppress)."""
    out = [Condition()]
    for method in methods:
        mults = suppress_scales if method == "neuron_suppress" else multipliers
        out += [Condition(method, c, l, float(m))
                for c, l, m in itertools.product(categories, layers, mults)]
    return out


@dataclass(frozen=True)
class SafeSteerSpec:
    """One SafeSteer condition's steering, picklable for a work item (only what it needs)."""

    method: str
    layer: int
    multiplier: float
    vector: torch.Tensor | None = None  # safesteer, neuron_add
    neurons: torch.Tensor | None = None  # neuron_suppress: the top neurons and their clamp
    clamp: torch.Tensor | None = None

    def context(self, model):
        l, m = self.layer, self.multiplier
        if self.method == "safesteer":
            return add_category_vector(model, self.vector, l, m)
        if self.method == "neuron_add":
            return add_neuron_vector(model, self.vector, l, m)
        if self.method == "neuron_suppress":
            return scale_neurons(model, {l: self.neurons}, {l: self.clamp}, scale=m)
        raise WorkbenchError(f"unknown SafeSteer method {self.method!r}")


def steering_spec(cond: Condition, steer: SteeringSet) -> SafeSteerSpec | None:
    """The steering of a condition (``None``: unsteered)."""
    c, l, m = cond.category, cond.layer, cond.multiplier
    if cond.method == "safesteer":
        return SafeSteerSpec("safesteer", l, m, vector=steer.safesteer[c][l].float())
    if cond.method == "neuron_add":
        return SafeSteerSpec("neuron_add", l, m, vector=steer.neuron[c][l].float())
    if cond.method == "neuron_suppress":
        return SafeSteerSpec("neuron_suppress", l, m, neurons=steer.top[(c, l)],
                             clamp=steer.clamp[(c, l)])
    return None


def eval_items(cond: Condition, data: CategoryData) -> list[tuple[str, object]]:
    """(split, prompt) pairs a condition answers: its category's held-out ones and the benign."""
    cats = data.categories if cond.method == "none" else [cond.category]
    return ([("harmful", i) for c in cats for i in data.eval[c]]
            + [("benign", i) for i in data.safe_eval])


def evaluation_items(model, conds: list[Condition], data: CategoryData, steer: SteeringSet,
                     done: Container[str], max_new_tokens: int,
                     batch_size: int) -> list[GenerationItem]:
    """Work items for every evaluation answer whose key is not in ``done``: one condition per
    item (not all SafeSteer steering is additive), its missing prompts in chunks of
    ``4 * batch_size``; an item's ``tag`` is ``(condition, [(split, prompt)])``."""
    items, chunk = [], batch_size * 4
    for cond in conds:
        todo = [(s, i) for s, i in eval_items(cond, data)
                if f"eval|{cond.key}|{s}|{i.id}" not in done]
        spec = steering_spec(cond, steer)
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            items.append(GenerationItem(
                (cond, part), model.tokenize_instructions([i.instruction for _, i in part]),
                [spec], max_new_tokens, engine="reference", batch_size=batch_size))
    return items


def evaluate_condition(model, cond: Condition, part, prompts: list[list[int]],
                       responses: list[str], judge, batch_size: int) -> list[dict]:
    """Judge and score the perplexity (unsteered) of one batch of a condition's answers: its
    ``generations.jsonl`` records (the caller saves them). ``part``: the item's (split, prompt)
    pairs; perplexity runs in batches of ``batch_size // 2``."""
    ppl = response_perplexity(model, prompts, responses, batch_size=max(batch_size // 2, 1))
    harmful = [k for k, (s, _) in enumerate(part) if s == "harmful"]
    detail = dict(zip(harmful, judge_labels(judge, [part[k][1].instruction for k in harmful],
                                            [responses[k] for k in harmful])))
    recs = []
    for k, ((split_name, item), resp) in enumerate(zip(part, responses)):
        refusal, comp = is_refusal(resp), is_comprehensible(resp)
        labels = detail.get(k, {})
        label = labels.get(judge.name) or ("incomprehensible" if not comp else
                                           "refused" if refusal else "complied")
        recs.append({
            "key": f"eval|{cond.key}|{split_name}|{item.id}", "split": split_name,
            "method": cond.method, "category": cond.category, "layer": cond.layer,
            "multiplier": cond.multiplier, "prompt_id": item.id,
            "prompt_category": item.category, "instruction": item.instruction,
            "response": resp, "label": label, "labels": labels, "refusal": refusal,
            "comprehensible": comp,
            "perplexity": ppl[k],
        })
    return recs


__all__ = ["Condition", "SafeSteerSpec", "conditions", "eval_items", "evaluate_condition",
           "evaluation_items", "steering_spec"]
