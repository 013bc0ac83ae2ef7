"""The prompts a run answers: attack and benign samples kept apart from the prompts a
direction was fitted or selected on, so fitting and testing never share a prompt; and the
held-out prompts a demonstration shows (:func:`most_refused`)."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from workbench.data import Instruction, embedded_instructions, instruction_source, split
from workbench.data.benchmarks import load_attack_prompts, stratified_subset
from workbench.errors import WorkbenchError


def attack_prompts(source: str, limit: int | None, seed: int, attack_source: str = "auto",
                   exclude: Collection[str] = frozenset()) -> tuple[list, int]:
    """Attack prompts (the embedded harmful set, a dataset name, or a file) with every prompt
    in ``exclude`` removed before the sample of ``limit`` is drawn (stratified by category for
    datasets), and how many were removed. Fewer left than ``limit`` is an error that says what
    to change."""
    if source == "embedded":
        items = embedded_instructions("harmful")
    else:
        items = load_attack_prompts(source, source=attack_source, seed=seed)
    kept = [i for i in items if i.instruction not in exclude]
    removed = len(items) - len(kept)
    if limit is not None and len(kept) < limit:
        raise WorkbenchError(
            f"only {len(kept)} of {len(items)} attack prompts ({source}) are outside the "
            f"refusal direction's train and validation prompts, fewer than --attack-limit "
            f"{limit}; lower --attack-limit, lower --n-train / --n-val, or attack "
            "with a benchmark (--attack jbb)")
    if source == "embedded":
        if limit is not None:
            kept = split(kept, [limit], seed + 1)[0]
    else:
        kept = stratified_subset(kept, lambda i: i.category, limit, seed)
    return kept, removed


def benign_prompts(source: str, limit: int | None, seed: int,
                   exclude: Collection[str] = frozenset()) -> list:
    """Benign prompts for false refusals (a sample of ``limit``), without those in
    ``exclude``."""
    items, _ = instruction_source(source, "harmless")
    items = [i for i in items if i.instruction not in exclude]
    if limit is not None:
        items = split(items, [min(limit, len(items))], seed + 2)[0]
    if not items:
        raise WorkbenchError("no benign prompts left after removing direction-training prompts; "
                             "give a larger --benign file")
    return items


def with_ids(items: list, prefix: str) -> list:
    """``items`` with ``<prefix>-<n>`` as the id of every one that has none."""
    return [i if i.id else Instruction(i.instruction, f"{prefix}-{n}", i.category)
            for n, i in enumerate(items)]


def most_refused(items: Sequence, scores: Sequence[float], n: int,
                 exclude: Collection[str] = frozenset()) -> list:
    """The ``n`` items the unsteered model is most inclined to refuse, for a demonstration.

    ``scores`` holds one number per item, higher meaning more refusal, computed on the model
    *before* any steering (e.g. :func:`workbench.directions.prompt_refusal_scores`). Items whose
    text is in ``exclude`` (the prompts a direction was fitted or selected on) are never picked,
    so the demo shows held-out prompts. The pick is the top ``n`` by score, highest first; ties
    go to the earlier item, so the same scores always give the same prompts. Items are text or
    :class:`~workbench.data.Instruction`; they come back as given.
    """
    if len(items) != len(scores):
        raise WorkbenchError(f"most_refused got {len(items)} items but {len(scores)} scores; "
                             "give one refusal score per item")
    if n < 1:
        raise WorkbenchError(f"most_refused needs n >= 1 prompts, got {n}")
    values = [float(s) for s in scores]
    if any(math.isnan(v) for v in values):
        raise WorkbenchError("most_refused got a NaN refusal score; score every item on the "
                             "unsteered model first")
    texts = [i.instruction if isinstance(i, Instruction) else i for i in items]
    pool = [k for k, text in enumerate(texts) if text not in exclude]
    if len(pool) < n:
        raise WorkbenchError(
            f"only {len(pool)} of {len(items)} prompts are outside the {len(items) - len(pool)} "
            f"excluded (direction-fitting) prompts, fewer than the {n} asked for; ask for fewer, "
            "or fit the direction on fewer prompts")
    pool.sort(key=lambda k: (-values[k], k))
    return [items[k] for k in pool[:n]]
