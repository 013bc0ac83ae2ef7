"""Mitigation and scaling of steering vectors: remove the refusal component (one direction or a
subspace), the same-size random removal that is its placebo, random placebo directions, and
the coefficient scales. Pure functions of tensors: the audit decides which vectors get which.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from jaxtyping import Float

from workbench.geometry import (
    random_orthogonal_directions,
    remove_projection,
    remove_random_component,
    remove_subspace,
    unit,
)

Tensor = torch.Tensor
NAN = float("nan")


def placebo_seed(seed: int, index: int, layer: int, removal: bool = False) -> int:
    """The seed of one placebo draw: a placebo direction (``index`` 0..k-1) or the random
    removal of behaviour vector ``index``, at one layer; recorded in ``run.json``."""
    return 1_000_003 * seed + 7919 * (index + 1) + 97 * layer + (1 if removal else 0)


def mean_norms(vectors: Iterable[Float[Tensor, "layer d"]], layers: list[int]
               ) -> dict[int, float]:
    """Per layer, the mean norm of ``vectors`` there (the scale of the refusal-direction
    control and of the placebo directions: the mean CAA norm)."""
    vectors = list(vectors)
    return {l: float(torch.stack([v[l].double().norm() for v in vectors]).mean())
            for l in layers}


def avoided(refusal: Float[Tensor, " d"], basis: Float[Tensor, "k d"] | None
            ) -> Float[Tensor, "k d"]:
    """What placebos stay orthogonal to: the refusal subspace, else the unit refusal direction."""
    return basis if basis is not None else unit(refusal)[None]


def scaled_direction(direction: Float[Tensor, " d"], norm: float) -> Float[Tensor, " d"]:
    """``direction`` as a unit vector times ``norm``."""
    return unit(direction) * norm


def mitigate(v: Float[Tensor, " d"], refusal: Float[Tensor, " d"],
             basis: Float[Tensor, "k d"] | None = None) -> Float[Tensor, " d"]:
    """``v`` without its refusal component: ``v - (v . r_hat) r_hat``, or without its
    component in the refusal subspace ``basis`` when given."""
    return remove_subspace(v, basis) if basis is not None else remove_projection(v, refusal)


def removal_placebo(v: Float[Tensor, " d"], mitigated: Float[Tensor, " d"],
                    avoid: Float[Tensor, "k d"], seed: int) -> Float[Tensor, " d"]:
    """The mitigation placebo: ``v`` minus a component as large as the one mitigation removed
    (``v - mitigated``), along a seeded random direction orthogonal to ``avoid``."""
    removed = float((v - mitigated).norm())
    return remove_random_component(v, removed, avoid, seed)


def placebo_direction(d_model: int, avoid: Float[Tensor, "k d"], seed: int, norm: float
                      ) -> Float[Tensor, " d"]:
    """A seeded random unit direction orthogonal to ``avoid``, scaled to ``norm``."""
    return random_orthogonal_directions(1, d_model, avoid, seed)[0] * norm


def absolute_coefficient(coefficient: float, scale: str, resid_norm: float | None = None,
                         vector: Tensor | None = None) -> float:
    """The multiplier applied to the raw vector: the coefficient itself (``absolute`` scale),
    or ``c * mean ||resid|| / ||v||`` (``norm`` scale; ``vector`` is the unmitigated vector, so
    mitigation removes a component without rescaling the rest)."""
    if scale == "absolute" or vector is None:
        return coefficient
    return coefficient * resid_norm / max(float(vector.norm()), 1e-12)


def condition_info(vector: Tensor | None, unmitigated: Tensor | None, coefficient_abs: float,
                   resid_norm: float, r_hat: Float[Tensor, " d"]) -> dict:
    """What one condition added: the multiplier, the vector's norm, the mean residual norm at
    its layer, the cosine of the vector with the selected refusal direction ``r_hat``, and its
    projection on it in units of the residual norm, ``coefficient_abs * (v . r_hat) /
    resid_norm`` (the regression's predictor). ``vector`` None: the baseline (nothing added)."""
    if vector is None:
        return {"coefficient_abs": coefficient_abs, "vector_norm": 0.0, "resid_norm": NAN,
                "cosine": 0.0, "projection": 0.0}
    v = vector.double()
    norm = float(v.norm())
    dot = float(v @ r_hat.double())
    # a mitigated refusal direction is rounding noise: its direction (cosine) means nothing
    empty = norm <= 1e-9 * float(unmitigated.double().norm())
    return {"coefficient_abs": coefficient_abs, "vector_norm": norm, "resid_norm": resid_norm,
            "cosine": 0.0 if empty else dot / norm,
            "projection": coefficient_abs * dot / resid_norm}
