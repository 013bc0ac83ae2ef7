"""The refusal direction a SafeSteer run measures its vectors and neurons against.

Per layer ``[n_layers, d_model]`` (float64): the diff-in-means candidates at the last eoi token
(``candidates``), one selected direction repeated on every layer (``select``), or the
``refusal.direction`` of a ``workbench directions`` run (a run directory or its
``directions.safetensors``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from workbench.directions import refusal_candidates, select_refusal_direction
from workbench.errors import WorkbenchError
from workbench.safesteer.data import CategoryData


def refusal_directions(
    model, data: CategoryData, source: str = "candidates", batch_size: int = 16,
    search_layers: list[int] | None = None, progress: bool = False,
) -> tuple[torch.Tensor, dict]:
    """A refusal direction per layer ``[n_layers, d_model]`` (float64) and its record.

    ``source``: ``candidates``, ``select`` (on the train prompts, halves for candidates and
    selection; ``search_layers`` limits the search) or a directions run. Harmful prompts are
    every category's train prompts, harmless ones the safe train prompts.
    """
    tok = lambda items: model.tokenize_instructions([i.instruction for i in items])  # noqa: E731
    harm = [i for c in data.categories for i in data.train[c]]
    safe = data.safe_train
    if source == "candidates":
        cand = refusal_candidates(model, tok(harm), tok(safe), batch_size, progress=False)
        return cand[-1].double(), {"kind": "candidates", "offset": -1,
                                   "note": "diff-in-means at the last eoi token, per layer"}
    if source == "select":
        cand = refusal_candidates(model, tok(harm[0::2]), tok(safe[0::2]), batch_size,
                                  progress=False)
        sel = select_refusal_direction(model, cand, tok(harm[1::2]), tok(safe[1::2]),
                                       layers=search_layers,
                                       batch_size=batch_size, progress=progress)
        r = sel.direction.double()
        return r.expand(model.n_layers, -1).clone(), {
            "kind": "select", "layer": sel.layer, "offset": sel.offset,
            "filters_passed": sel.filters_passed}
    from safetensors.torch import load_file

    path = Path(source)
    path = path / "directions.safetensors" if path.is_dir() else path
    if not path.is_file():
        raise WorkbenchError(f"refusal {source!r} is not 'candidates', 'select' or a "
                             "directions run (no directions.safetensors there); run `workbench "
                             "directions` first or use refusal = 'candidates'")
    tensors = load_file(path)
    if "refusal.direction" not in tensors:
        raise WorkbenchError(f"{path} has no refusal.direction; give a `workbench directions` run")
    r = model.check_vector(tensors["refusal.direction"].double(), f"refusal direction in {path}")
    return r.expand(model.n_layers, -1).clone(), {"kind": "file", "path": str(path)}


def landing_directions(refusal: torch.Tensor) -> torch.Tensor:
    """Row ``l``: the refusal direction where an edit at block ``l`` first lands.

    ``attn_out`` and ``mlp_out`` of block ``l`` reach the residual stream read by block
    ``l + 1``, so row ``l`` is the resid_pre direction of layer ``l + 1`` (the last block keeps
    its own). Used for every cosine of a category vector or write-out with refusal.
    """
    n = refusal.shape[0]
    return refusal[[min(l + 1, n - 1) for l in range(n)]]


__all__ = ["landing_directions", "refusal_directions"]
