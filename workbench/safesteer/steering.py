"""SafeSteer interventions as context managers that always remove their hooks.

- :func:`add_category_vector`: the paper's method, ``attn_out[l] += m * w_l^c`` at every token;
- :func:`add_neuron_vector`: activate category neurons through their write-out directions,
  ``mlp_out[l] += m * v_l^c`` at every token;
- :func:`scale_neurons`: suppress (or amplify) chosen neurons in place,
  ``a_i <- value_i + scale * (a_i - value_i)`` at ``mlp_post`` (scale 0 clamps to ``value``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from jaxtyping import Float

from workbench.activations.points import hook_name
from workbench.errors import WorkbenchError
from workbench.safesteer.neurons import check_neurons
from workbench.steering import add_vector

Tensor = torch.Tensor


@contextmanager
def add_category_vector(
    model, vector: Float[Tensor, " d"], layer: int, multiplier: float = 1.0
) -> Iterator[None]:
    """Add ``multiplier * vector`` to the attention output of ``layer`` at every token."""
    with add_vector(model, vector, layers=layer, coefficient=multiplier, positions="all",
                    hook="attn_out"):
        yield


@contextmanager
def add_neuron_vector(
    model, vector: Float[Tensor, " d"], layer: int, multiplier: float = 1.0
) -> Iterator[None]:
    """Add ``multiplier * vector`` to the MLP output of ``layer`` at every token."""
    with add_vector(model, vector, layers=layer, coefficient=multiplier, positions="all",
                    hook="mlp_out"):
        yield


@contextmanager
def scale_neurons(
    model,
    neurons: Mapping[int, Sequence[int] | Tensor],
    value: float | Mapping[int, Sequence[float] | Tensor] = 0.0,
    scale: float = 0.0,
) -> Iterator[None]:
    """Set chosen MLP neurons to ``value + scale * (a - value)`` at every token.

    ``neurons`` maps a layer to neuron indices; ``value`` is one number or, per layer, one
    value per listed neuron (e.g. each neuron's mean on safe text). ``scale=0`` clamps the
    neurons to ``value``; ``value=0`` with ``scale=s`` multiplies them by ``s``.
    """
    plan = []
    for layer, idx in neurons.items():
        layer = model.check_layer(int(layer))
        idx = check_neurons(model, layer, idx)
        if isinstance(value, Mapping):
            if layer not in value:
                raise WorkbenchError(f"no clamp values given for layer {layer}; give one value "
                                     "per listed neuron for every layer")
            vals = torch.as_tensor(value[layer], dtype=torch.float32).reshape(-1)
        else:
            vals = torch.full((len(idx),), float(value))
        if len(vals) != len(idx):
            raise WorkbenchError(f"layer {layer} lists {len(idx)} neurons but {len(vals)} clamp "
                                 "values; give one value per neuron")
        plan.append((layer, idx, vals))

    def make(idx: Tensor, vals: Tensor):
        def fn(t: Tensor, hook) -> Tensor:
            i, v = idx.to(t.device), vals.to(device=t.device, dtype=t.dtype)
            out = t.clone()
            out[..., i] = v + scale * (t[..., i] - v)
            return out

        return fn

    fwd = [(hook_name("mlp_post", layer), make(idx, vals)) for layer, idx, vals in plan]
    with model.hooks(fwd):
        yield


__all__ = ["add_category_vector", "add_neuron_vector", "scale_neurons"]
