"""Steering operations as context managers that always remove what they attached.

All of them work in a plain forward pass and during ``generate`` with a KV cache, and they
compose by nesting (``with ablate(...), add_vector(...):``) or with :func:`steer`.

Token positions for additions (prompts are left-padded, so the prompt ends at the same column
in every row):

- ``"all"``: every position, prompt and generated tokens;
- ``"eoi"``: the post-instruction template tokens and every generated token (CAA's convention:
  everything after the instruction);
- ``"generated"``: generated tokens only, from the first one fed back into the model.

A call whose sequence is longer than one token is read as a prompt (prefill); one-token calls
are read as decoding steps.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import ContextManager, Iterator, Sequence

import torch
from jaxtyping import Float

from workbench.activations.points import hook_name
from workbench.errors import WorkbenchError
from workbench.geometry import orthonormal_basis

Tensor = torch.Tensor
STEER_POSITIONS = ("all", "eoi", "generated")


def _layers(model, layers: int | Sequence[int] | None) -> list[int]:
    if layers is None:
        return list(range(model.n_layers))
    if isinstance(layers, int):
        layers = [layers]
    return [model.check_layer(l) for l in layers]


def _per_layer(model, vector: Tensor, layers: list[int]) -> dict[int, Tensor]:
    model.check_vector(vector, "steering vector")
    if vector.ndim == 1:
        return {l: vector for l in layers}
    if vector.ndim == 2 and vector.shape[0] == model.n_layers:
        return {l: vector[l] for l in layers}
    raise WorkbenchError(
        f"steering vector has shape {tuple(vector.shape)}; give [d_model] or "
        f"[n_layers={model.n_layers}, d_model]"
    )


@contextmanager
def add_vector(
    model,
    vector: Float[Tensor, " d"] | Float[Tensor, "layer d"],
    layers: int | Sequence[int],
    coefficient: float = 1.0,
    positions: str = "all",
    hook: str = "resid_pre",
) -> Iterator[None]:
    """Add ``coefficient * vector`` at ``hook`` of each of ``layers`` (activation addition).

    A ``[n_layers, d]`` stack adds row ``l`` at layer ``l``.
    """
    if positions not in STEER_POSITIONS:
        raise WorkbenchError(f"unknown steering positions {positions!r}; use {STEER_POSITIONS}")
    per_layer = _per_layer(model, vector, _layers(model, layers))
    n_eoi = model.n_eoi

    def make(v: Tensor):
        def fn(t: Tensor, hook) -> Tensor:
            delta = (coefficient * v).to(device=t.device, dtype=t.dtype)
            return _add_at(t, delta, positions, n_eoi)

        return fn

    fwd = [(hook_name(hook, l), make(v)) for l, v in per_layer.items()]
    with model.hooks(fwd):
        yield


def _add_at(t: Tensor, delta: Tensor, positions: str, n_eoi: int) -> Tensor:
    """``t + delta`` at ``positions`` (see the module docstring); ``delta`` broadcasts over seq."""
    if positions == "all" or t.shape[1] == 1:
        return t + delta
    if positions == "generated":
        return t
    out = t.clone()
    out[:, -n_eoi:] += delta
    return out


@contextmanager
def add_row_vectors(
    model,
    deltas: dict[int, Float[Tensor, "batch d"]],
    positions: str = "all",
    hook: str = "resid_pre",
) -> Iterator[None]:
    """Add a different vector to each batch row: ``deltas[l][b]`` at ``hook`` of layer ``l``.

    The batched form of :func:`add_vector` (``deltas`` already include the coefficient), so
    rows of several steering conditions share one forward or one ``generate``; a zero row
    leaves that row exactly unsteered. Every call must have the batch size of ``deltas``.
    """
    if positions not in STEER_POSITIONS:
        raise WorkbenchError(f"unknown steering positions {positions!r}; use {STEER_POSITIONS}")
    n_eoi = model.n_eoi
    sizes = {d.shape[0] for d in deltas.values()}
    if len(sizes) > 1:
        raise WorkbenchError(f"row deltas have different batch sizes {sorted(sizes)}; give one "
                             "row per batch row at every layer")
    for d in deltas.values():
        model.check_vector(d, "row steering vector")

    def make(d: Tensor):
        def fn(t: Tensor, hook) -> Tensor:
            if t.shape[0] != d.shape[0]:
                raise WorkbenchError(f"batch of {t.shape[0]} rows but {d.shape[0]} row deltas")
            return _add_at(t, d.to(device=t.device, dtype=t.dtype)[:, None, :], positions, n_eoi)

        return fn

    fwd = [(hook_name(hook, model.check_layer(l)), make(d)) for l, d in deltas.items()]
    with model.hooks(fwd):
        yield


def _project_out(t: Tensor, q: Tensor) -> Tensor:
    q = q.to(device=t.device, dtype=t.dtype)
    return t - (t @ q.T) @ q


@contextmanager
def ablate_directions(
    model,
    directions: Float[Tensor, " d"] | Float[Tensor, "k d"],
    layers: int | Sequence[int] | None = None,
) -> Iterator[None]:
    """Directional ablation: remove the span of ``directions`` from every writer.

    ``x <- x - Q^T Q x`` at each block input and each attention and MLP output (all layers by
    default), at every position, so no component along the directions survives anywhere.
    """
    model.check_vector(directions, "ablation direction")
    q = orthonormal_basis(directions).float()
    fn = lambda t, hook: _project_out(t, q)  # noqa: E731
    fwd = [(hook_name(kind, l), fn) for l in _layers(model, layers)
           for kind in ("resid_pre", "attn_out", "mlp_out")]
    with model.hooks(fwd):
        yield


@contextmanager
def orthogonalized_weights(
    model, directions: Float[Tensor, " d"] | Float[Tensor, "k d"]
) -> Iterator[None]:
    """Weight orthogonalisation: ``W <- W - Q^T Q W`` for every matrix writing to the residual.

    Equivalent to :func:`ablate_directions` on the writers (embedding, attention output,
    MLP output), but baked into the weights; the original weights are restored on exit.
    """
    model.check_vector(directions, "orthogonalisation direction")
    q = orthonormal_basis(directions)
    saved: list[tuple[torch.nn.Parameter, Tensor]] = []
    try:
        with torch.no_grad():
            for module, layout in model.residual_writers():
                w = module.weight
                saved.append((w, w.detach().clone()))
                qq = q.to(device=w.device)
                w64 = w.double()
                # embedding rows live in the residual basis; Linear weights map into it by rows
                new = w64 - (w64 @ qq.T) @ qq if layout == "rows" else w64 - qq.T @ (qq @ w64)
                w.copy_(new.to(w.dtype))
                bias = getattr(module, "bias", None)
                if layout == "cols" and bias is not None:
                    saved.append((bias, bias.detach().clone()))
                    bias.copy_(_project_out(bias.double(), qq).to(bias.dtype))
        yield
    finally:
        with torch.no_grad():
            for param, original in saved:
                param.copy_(original)


def steer(*operations: ContextManager) -> ContextManager:
    """Enter several steering context managers as one (e.g. ablate, then add)."""

    @contextmanager
    def _all() -> Iterator[None]:
        with ExitStack() as stack:
            for op in operations:
                stack.enter_context(op)
            yield

    return _all()


@contextmanager
def ablate_then_add(
    model,
    ablate: Float[Tensor, " d"] | Float[Tensor, "k d"],
    vector: Float[Tensor, " d"] | Float[Tensor, "layer d"],
    layers: int | Sequence[int],
    coefficient: float = 1.0,
    positions: str = "all",
) -> Iterator[None]:
    """Ablate ``ablate`` everywhere, then add ``coefficient * vector`` at ``layers``.

    The addition hook is attached after the ablation hooks at the same resid_pre point, so the
    added vector survives at its own layer (and is ablated again from later layers' inputs only
    along ``ablate``).
    """
    with ablate_directions(model, ablate), add_vector(model, vector, layers, coefficient,
                                                      positions):
        yield
