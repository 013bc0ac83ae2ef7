"""Which layers a SafeSteer run steers at and which layers' neurons it scores."""

from __future__ import annotations

from collections.abc import Sequence

from workbench.errors import WorkbenchError

PAPER_LAYER_FRAC = 14 / 32  # the paper's main result: layer 14 of 32


def steering_layers(model, layers: Sequence[int] | None = None) -> list[int]:
    """The steering layers, checked and sorted; none given: the paper's, ``round(14/32 * n)``."""
    layers = layers or [round(PAPER_LAYER_FRAC * model.n_layers)]
    return sorted({model.check_layer(l) for l in layers})


def scored_layers(model, neuron_layers: Sequence[int] | None, steer: Sequence[int],
                  methods: Sequence[str]) -> list[int]:
    """The layers whose neurons are scored (none given: all); with a neuron method among
    ``methods``, every steering layer in ``steer`` must be one of them."""
    if neuron_layers is None:
        return list(range(model.n_layers))
    layers = sorted({model.check_layer(l) for l in neuron_layers})
    missing = [l for l in steer if l not in layers]
    if missing and any(m.startswith("neuron") for m in methods):
        raise WorkbenchError(f"steering layer {missing[0]} is not among neuron_layers {layers}; "
                             "add it there or drop the neuron methods")
    return layers


__all__ = ["PAPER_LAYER_FRAC", "scored_layers", "steering_layers"]
