"""Generation work items: a batch of prompts under a set of steering conditions.

A job (the audit, SafeSteer) plans items from the cells (condition x prompt) still missing from
its ``generations.jsonl``; an executor runs them (in this process, or on Ray workers that each
hold a model replica, :mod:`workbench.distributed`); the job's driver alone judges the answers
and writes them. So resume, the config check and the tables work the same whatever ran the
items. An item holds only token ids, vectors and settings, so it pickles small.

Two engines run an item:

- ``"batched"``: every condition of the item in shared batches, each prompt's instruction
  prefix run once (:func:`workbench.steering.conditions.generate_conditions_ids`);
- ``"reference"``: one condition at a time, :func:`workbench.evaluation.generate` under
  :func:`workbench.steering.add_vector`, the unoptimised path kept to test the other against.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence

import torch
from jaxtyping import Float

from workbench.errors import WorkbenchError
from workbench.model.generation import generate_ids
from workbench.steering import add_vector
from workbench.steering.conditions import condition_delta, generate_conditions_ids

Tensor = torch.Tensor
ENGINES = ("batched", "reference")


@dataclass(frozen=True)
class Steer:
    """``coefficient * vector`` added at ``layer`` (the baseline is ``None`` in its place)."""

    layer: int
    vector: Float[Tensor, " d"]
    coefficient: float


class SteeringSpec(Protocol):
    """Any other steering (e.g. SafeSteer's neuron scaling): a picklable description whose
    ``context(model)`` is the hook context to generate under. Runs on the reference engine."""

    def context(self, model) -> AbstractContextManager: ...


@dataclass
class GenerationItem:
    """Greedy answers to ``prompts`` under each of ``conditions``; ``tag`` is the planner's."""

    tag: object
    prompts: list[list[int]]
    conditions: list[Steer | SteeringSpec | None]
    max_new_tokens: int
    positions: str = "eoi"
    engine: str = "batched"
    batch_size: int = 16  # rows per generate call

    @property
    def n_cells(self) -> int:
        return len(self.prompts) * len(self.conditions)


def run_item(model, item: GenerationItem) -> list[list[list[int]]]:
    """New token ids ``[condition][prompt]`` of one item (no judging: the driver judges)."""
    if item.engine == "batched":
        if any(s is not None and not isinstance(s, Steer) for s in item.conditions):
            raise WorkbenchError("the batched engine runs additive steering (Steer) only; "
                                 "plan other steering specs with engine='reference'")
        conds = [{} if s is None else {s.layer: condition_delta(s.vector, s.coefficient)}
                 for s in item.conditions]
        return generate_conditions_ids(model, item.prompts, conds, item.max_new_tokens,
                                       item.positions, batch_size=item.batch_size,
                                       progress=False)
    if item.engine == "reference":
        out = []
        for s in item.conditions:
            ctx = (nullcontext() if s is None else
                   add_vector(model, s.vector, layers=s.layer, coefficient=s.coefficient,
                              positions=item.positions) if isinstance(s, Steer) else
                   s.context(model))
            with ctx:
                out.append(generate_ids(model, item.prompts, item.max_new_tokens,
                                        item.batch_size, progress=False))
        return out
    raise WorkbenchError(f"unknown generation engine {item.engine!r}; use one of {ENGINES}")


def plan_items(
    prompts: Sequence[Sequence[int]],
    missing: Sequence[Sequence[int]],
    conditions: Sequence[Steer | None],
    max_new_tokens: int,
    positions: str,
    engine: str,
    batch_size: int,
) -> list[GenerationItem]:
    """Items covering every missing cell; ``missing[p]`` lists prompt ``p``'s missing conditions.

    ``batched``: prompts sorted by length, grouped so one item fills about ``batch_size`` rows
    with every condition any of its prompts still lacks (cells already done in such a group are
    generated again and dropped by the store). ``reference``: one item per condition, its
    missing prompts in chunks of ``4 * batch_size``. An item's ``tag`` is
    ``(prompt indices, condition indices)``.
    """
    if engine not in ENGINES:
        raise WorkbenchError(f"unknown generation engine {engine!r}; use one of {ENGINES}")
    todo = [p for p in range(len(prompts)) if missing[p]]
    items = []
    if engine == "reference":
        for c in range(len(conditions)):
            ps = [p for p in todo if c in missing[p]]
            for s in range(0, len(ps), 4 * batch_size):
                chunk = ps[s:s + 4 * batch_size]
                items.append(GenerationItem((chunk, [c]), [list(prompts[p]) for p in chunk],
                                            [conditions[c]], max_new_tokens, positions,
                                            engine, batch_size))
        return items
    todo.sort(key=lambda p: len(prompts[p]))
    chunk: list[int] = []
    conds: set[int] = set()
    for p in todo:
        grown = conds | set(missing[p])
        if chunk and (len(chunk) + 1) * len(grown) > batch_size:
            items.append(_batched_item(prompts, chunk, conds, conditions, max_new_tokens,
                                       positions, batch_size))
            chunk, grown = [], set(missing[p])
        chunk.append(p)
        conds = grown
    if chunk:
        items.append(_batched_item(prompts, chunk, conds, conditions, max_new_tokens,
                                   positions, batch_size))
    return items


def _batched_item(prompts, chunk, conds, conditions, max_new_tokens, positions, batch_size):
    cs = sorted(conds)
    return GenerationItem((chunk, cs), [list(prompts[p]) for p in chunk],
                          [conditions[c] for c in cs], max_new_tokens, positions, "batched",
                          batch_size)


def run_local(model, items: Sequence[GenerationItem]
              ) -> Iterator[tuple[GenerationItem, list[list[list[int]]]]]:
    """The in-process executor: each item and its token ids, in order."""
    for item in items:
        yield item, run_item(model, item)


Executor = Callable[[Sequence[GenerationItem]],
                    Iterator[tuple[GenerationItem, list[list[list[int]]]]]]
