"""Batched residual-stream caching: only the hooks and positions asked for, stopped early.

Prompts are left-padded with an attention mask and position ids derived from it, so results
do not depend on batch size or padding. Each hook slices its positions as the forward runs and
the pass stops after the last block needed. Two modes:

- ``collect_activations``: every prompt's activations, float32 ``[n, pos, layer, d]``;
- ``mean_activations``: streamed float64 sums, so memory is ``O(pos * layer * d)`` whatever n.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from workbench.activations.points import Positions, hook_name, hook_width, resolve_positions
from workbench.errors import WorkbenchError


@dataclass
class Activations:
    """Cached activations keyed by hook kind.

    ``data[kind]`` is ``[n, pos, layer, d]`` float32 (collected) or ``[pos, layer, d]``
    float64 (means); ``layers`` and ``offsets`` label the layer and position axes
    (``offsets`` is None for the token mean).
    """

    data: dict[str, torch.Tensor]
    layers: list[int]
    offsets: list[int] | None
    n_prompts: int
    meta: dict = field(default_factory=dict)

    def __getitem__(self, kind: str) -> torch.Tensor:
        return self.data[kind]


def _check_request(model, prompts, hooks, layers) -> list[int]:
    if len(prompts) == 0:
        raise WorkbenchError("the prompt set is empty; give at least one prompt")
    layers = list(range(model.n_layers)) if layers is None else [model.check_layer(l) for l in layers]
    if not layers:
        raise WorkbenchError("no layers requested; give at least one layer")
    for kind in hooks:
        hook_name(kind, 0)
    return sorted(set(layers))


def _gather(t: torch.Tensor, mask: torch.Tensor, offsets: list[int] | None) -> torch.Tensor:
    """[batch, seq, d] -> [batch, pos, d]: end-relative offsets, or the masked token mean."""
    if offsets is None:
        m = mask.to(t.dtype).unsqueeze(-1)
        return ((t * m).sum(1) / m.sum(1)).unsqueeze(1)
    return t[:, offsets, :]


@contextmanager
def _reading_hooks(model, kinds, layers, mask_ref, offsets, sink: Callable) -> Iterator[None]:
    """Attach hooks that hand each gathered activation to ``sink(kind, layer_idx, acts)``."""

    def make(kind: str, li: int):
        def fn(t, hook):
            sink(kind, li, _gather(t, mask_ref[0], offsets))
            return t

        return fn

    fwd = [(hook_name(kind, layer), make(kind, li))
           for kind in kinds for li, layer in enumerate(layers)]
    with model.hooks(fwd):
        yield


def _run_batches(
    model, prompts, kinds, layers, positions, batch_size, progress, on_batch_start, sink
):
    offsets = resolve_positions(model, positions)
    shortest = min(len(p) for p in prompts)
    if offsets is not None and -min(offsets) > shortest:
        raise WorkbenchError(
            f"position offset {min(offsets)} reaches before the start of a {shortest}-token "
            "prompt; use offsets within the prompt"
        )
    mask_ref: list[torch.Tensor] = [torch.empty(0)]
    stop = max(layers) + 1
    starts = range(0, len(prompts), batch_size)
    bar = tqdm(starts, desc="caching", unit="batch", disable=not progress or len(starts) < 4)
    with _reading_hooks(model, kinds, layers, mask_ref, offsets, sink):
        for start in bar:
            batch = prompts[start:start + batch_size]
            ids, mask = model.pad(batch)
            mask_ref[0] = mask
            on_batch_start(start, len(batch))
            model.forward(ids, mask, stop_at_layer=stop)
    return offsets


def collect_activations(
    model,
    prompts: Sequence[Sequence[int]],
    hooks: Sequence[str] = ("resid_pre",),
    layers: Sequence[int] | None = None,
    positions: Positions = "last",
    batch_size: int = 16,
    progress: bool = True,
) -> Activations:
    """Per-prompt activations, float32 ``[n, pos, layer, d]`` per hook kind, on the CPU."""
    layers = _check_request(model, prompts, hooks, layers)
    n_pos = 1 if resolve_positions(model, positions) is None else len(
        resolve_positions(model, positions))
    out = {k: torch.empty(len(prompts), n_pos, len(layers), hook_width(model, k)) for k in hooks}
    where = [0, 0]

    def on_batch_start(start: int, size: int) -> None:
        where[0], where[1] = start, start + size

    def sink(kind: str, li: int, acts: torch.Tensor) -> None:
        out[kind][where[0]:where[1], :, li] = acts.float().cpu()

    offsets = _run_batches(model, prompts, hooks, layers, positions, batch_size, progress,
                           on_batch_start, sink)
    return Activations(out, layers, offsets, len(prompts))


def mean_activations(
    model,
    prompts: Sequence[Sequence[int]],
    hooks: Sequence[str] = ("resid_pre",),
    layers: Sequence[int] | None = None,
    positions: Positions = "last",
    batch_size: int = 16,
    progress: bool = True,
) -> Activations:
    """Mean activations over prompts, float64 ``[pos, layer, d]``, streamed batch by batch."""
    layers = _check_request(model, prompts, hooks, layers)
    sums: dict[str, Float[torch.Tensor, "pos layer d"]] = {}

    def sink(kind: str, li: int, acts: torch.Tensor) -> None:
        total = acts.double().sum(0)
        if kind not in sums:
            sums[kind] = torch.zeros(total.shape[0], len(layers), total.shape[1],
                                     dtype=torch.float64, device=total.device)
        sums[kind][:, li] += total

    offsets = _run_batches(model, prompts, hooks, layers, positions, batch_size, progress,
                           lambda start, size: None, sink)
    means = {k: (v / len(prompts)).cpu() for k, v in sums.items()}
    return Activations(means, layers, offsets, len(prompts))
