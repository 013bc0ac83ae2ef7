"""Geometry of directions: cosines per layer, projection removal, random placebo directions,
principal angles.

Pure tensor functions; nothing here touches a model.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
from jaxtyping import Float

from workbench.errors import WorkbenchError

Tensor = torch.Tensor


def unit(v: Float[Tensor, "... d"], eps: float = 1e-12) -> Float[Tensor, "... d"]:
    """``v`` scaled to unit norm along the last axis (zero vectors stay zero)."""
    return v / v.norm(dim=-1, keepdim=True).clamp_min(eps)


def cosine_by_layer(
    a: Float[Tensor, "layer d"], b: Float[Tensor, "layer d"] | Float[Tensor, " d"]
) -> Float[Tensor, " layer"]:
    """Cosine between matching rows of two vector stacks (or each row and one vector)."""
    if a.shape[-1] != b.shape[-1]:
        raise WorkbenchError(
            f"cannot compare vectors of width {a.shape[-1]} and {b.shape[-1]}; "
            "both must come from the same model"
        )
    a64, b64 = a.double(), b.double()
    return (unit(a64) * unit(b64)).sum(-1)


def orthonormal_basis(vectors: Float[Tensor, "k d"]) -> Float[Tensor, "k d"]:
    """Orthonormal rows spanning ``vectors`` (QR, float64), signs matched to the inputs."""
    if vectors.ndim == 1:
        vectors = vectors[None]
    q, r = torch.linalg.qr(vectors.double().T)
    signs = torch.sign(torch.diagonal(r))
    signs[signs == 0] = 1
    return (q * signs).T


def remove_projection(
    v: Float[Tensor, "... d"], r: Float[Tensor, " d"]
) -> Float[Tensor, "... d"]:
    """``v - (v . r_hat) r_hat``: the part of ``v`` orthogonal to direction ``r``."""
    r_hat = unit(r.double())
    v64 = v.double()
    return (v64 - (v64 @ r_hat)[..., None] * r_hat).to(v.dtype)


def remove_subspace(
    v: Float[Tensor, "... d"], basis: Float[Tensor, "k d"]
) -> Float[Tensor, "... d"]:
    """``v - Q^T Q v``: the part of ``v`` orthogonal to the span of ``basis`` rows."""
    q = orthonormal_basis(basis)
    v64 = v.double()
    return (v64 - (v64 @ q.T) @ q).to(v.dtype)


def random_orthogonal_directions(
    k: int, d: int, avoid: Float[Tensor, "m d"] | Float[Tensor, " d"] | None, seed: int
) -> Float[Tensor, "k d"]:
    """``k`` seeded random unit directions (Gaussian, float64), each orthogonal to every row of
    ``avoid``: placebo steering directions that share no component with the refusal direction.
    """
    if k < 0 or d < 1:
        raise WorkbenchError(f"cannot draw {k} directions of width {d}; give k >= 0, d >= 1")
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(k, d, generator=g, dtype=torch.float64)
    if avoid is not None:
        q = orthonormal_basis(avoid.double())
        x = x - (x @ q.T) @ q
    return unit(x)


def remove_random_component(
    v: Float[Tensor, " d"], removed_norm: float, avoid: Float[Tensor, "m d"] | Float[Tensor, " d"],
    seed: int,
) -> Float[Tensor, " d"]:
    """The mitigation placebo: ``v`` minus a component of norm ``removed_norm`` along a random
    direction orthogonal to ``avoid``, so ``v`` shortens exactly as removing its part in the
    span of ``avoid`` would shorten it, while that part stays untouched.

    The direction is ``u = a * unit(v_perp) + sqrt(1 - a^2) * z`` with ``v_perp`` the part of
    ``v`` orthogonal to ``avoid``, ``z`` a seeded random unit vector orthogonal to ``v`` and to
    ``avoid``, and ``a = removed_norm / |v_perp|`` (at most 1), so ``v . u = removed_norm``.
    """
    v64 = v.double()
    q = orthonormal_basis(avoid.double())
    v_perp = v64 - (v64 @ q.T) @ q
    norm = float(v_perp.norm())
    if norm == 0.0 or removed_norm <= 0.0:
        return v.clone()
    a = min(float(removed_norm) / norm, 1.0)
    z = random_orthogonal_directions(1, v64.shape[-1], torch.cat([q, v_perp[None]]), seed)[0]
    u = a * v_perp / norm + (1.0 - a * a) ** 0.5 * z
    return (v64 - (v64 @ u) * u).to(v.dtype)


def principal_angles(
    a: Float[Tensor, "k1 d"], b: Float[Tensor, "k2 d"]
) -> Float[Tensor, " k"]:
    """Principal angles (radians, ascending) between the row spans of ``a`` and ``b``."""
    angles = scipy.linalg.subspace_angles(
        np.asarray(a.double().T.cpu()), np.asarray(b.double().T.cpu())
    )
    return torch.from_numpy(np.sort(angles))
