"""Everything a SafeSteer run steers with, built from one activation pass over its texts.

Per category: the SafeSteer vector ``w_l^c`` (median-filtered mean ``attn_out`` difference,
:func:`category_vector`), the neuron scores, the top-k neurons per scored layer with their
clamp values (suppression) and the neuron vector ``v_l^c`` built from them (norm of ``w_l^c``).
Also the geometry of those vectors with each other and with the refusal direction.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

from workbench.errors import WorkbenchError
from workbench.geometry import cosine_by_layer
from workbench.safesteer.neurons import (
    GroupStats,
    NeuronScores,
    neuron_vector,
    score_neurons,
    stream_text_activations,
)
from workbench.safesteer.vectors import category_vector


@dataclass
class SteeringSet:
    """Everything the evaluation steers with, and the neuron scores behind it."""

    safesteer: dict[str, torch.Tensor]  # category -> [n_layers, d_model]
    neuron: dict[str, torch.Tensor]  # category -> [n_layers, d_model] (zero where not scored)
    top: dict[tuple[str, int], torch.Tensor]  # (category, layer) -> neuron indices
    clamp: dict[tuple[str, int], torch.Tensor]  # clamp values per top neuron
    scores: NeuronScores
    kept: dict
    warnings: list[str] = field(default_factory=list)


def compute_steering(model, texts: dict[str, list[list[int]]], categories: list[str],
                     neuron_layers: list[int], *, batch_size: int, median_filter: bool,
                     top_k: int, suppress_value: str) -> SteeringSet:
    """One activation pass per group, then category vectors, neuron scores and neuron vectors.

    ``texts``: token ids per group (each category, and ``safe``); ``top_k`` neurons per
    category and scored layer; ``suppress_value``: ``safe_mean`` clamps them to their mean on
    safe texts, anything else to 0.
    """
    all_layers = list(range(model.n_layers))
    stats, attn = {}, {}
    for name, toks in texts.items():
        halves = [GroupStats.zeros(len(neuron_layers), model.d_mlp) for _ in range(2)]
        attn[name] = stream_text_activations(model, toks, neuron_layers, halves, all_layers,
                                             batch_size)
        stats[name] = halves
    scores = score_neurons(stats, categories, neuron_layers)
    safesteer, neuron, top, clamp, kept, warnings = {}, {}, {}, {}, {}, []
    for c in categories:
        w, info = category_vector(attn["safe"], attn[c], median_filter)
        safesteer[c] = w
        kept[c] = {"safe": info["kept_safe"].sum(0).tolist(),
                   "unsafe": info["kept_unsafe"].sum(0).tolist()}
        v = torch.zeros_like(w)
        for l in neuron_layers:
            idx = scores.top(c, l, top_k)
            ci, li = scores.index(c, l)
            top[(c, l)] = idx
            clamp[(c, l)] = (scores.mean_safe[li, idx].float() if suppress_value == "safe_mean"
                             else torch.zeros(len(idx)))
            try:
                v[l] = neuron_vector(model, l, idx, scores.t[ci, li, idx], float(w[l].norm()))
            except WorkbenchError:  # no neuron fires more on c here: the row stays 0
                warnings.append(f"no positively selective neuron for {c!r} at layer {l}; its "
                                "neuron vector is 0")
        neuron[c] = v
    return SteeringSet(safesteer, neuron, top, clamp, scores, kept, warnings)


def geometry_rows(steer: SteeringSet, refusal: torch.Tensor, layers: list[int]) -> list[dict]:
    """Cosine of every pair of category vectors, and of each with the refusal direction."""
    rows = []
    for kind, vecs in (("safesteer", steer.safesteer), ("neuron", steer.neuron)):
        named = {**vecs, "refusal": refusal}
        for a, b in itertools.combinations(list(named), 2):
            cos = cosine_by_layer(named[a][layers], named[b][layers])
            rows += [{"kind": kind, "layer": l, "a": a, "b": b, "cosine": float(x)}
                     for l, x in zip(layers, cos)]
    return rows


def vector_info(steer: SteeringSet, refusal: torch.Tensor, layers: list[int]) -> dict:
    """(method, category, layer) -> refusal cosine and norm of the vector that method uses."""
    out = {}
    for c in steer.safesteer:
        for l in layers:
            for method, v in (("safesteer", steer.safesteer[c][l]),
                              ("neuron_add", steer.neuron[c][l]),
                              ("neuron_suppress", steer.neuron[c][l])):
                cos = float(cosine_by_layer(v[None], refusal[l])[0])
                out[(method, c, l)] = {"refusal_cosine": cos, "vector_norm": float(v.norm())}
    return out


__all__ = ["SteeringSet", "compute_steering", "geometry_rows", "vector_info"]
