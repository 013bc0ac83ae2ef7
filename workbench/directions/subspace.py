"""A k-dimensional refusal subspace, beyond the single-direction assumption.

Basis: the refusal direction first (the selected one when given, else the unit
difference-in-means of these activations), then the top principal components of the harmful
activations (centred on the harmless mean) with that direction projected out. With k = 1 it is
the refusal direction itself.
"""

from __future__ import annotations

import torch
from jaxtyping import Float

from workbench.errors import WorkbenchError
from workbench.geometry import orthonormal_basis, unit

Tensor = torch.Tensor


def refusal_subspace(
    harmful: Float[Tensor, "n d"], harmless: Float[Tensor, "m d"], k: int,
    first: Float[Tensor, " d"] | None = None,
) -> Float[Tensor, "k d"]:
    """Orthonormal ``[k, d]`` basis whose first row is ``first`` (the selected refusal
    direction, so subspace mitigation removes at least what direction mitigation removes), or
    the unit diff-in-means direction of these activations when ``first`` is None."""
    if not 1 <= k <= min(harmful.shape[0], harmful.shape[1]):
        raise WorkbenchError(
            f"subspace dimension k={k} must be between 1 and {min(harmful.shape)} "
            "(the number of harmful prompts and d_model)"
        )
    h, b = harmful.double(), harmless.double()
    r_hat = unit(h.mean(0) - b.mean(0) if first is None else first.double())
    if k == 1:
        return r_hat[None]
    centred = h - b.mean(0)
    centred = centred - (centred @ r_hat)[:, None] * r_hat
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return orthonormal_basis(torch.cat([r_hat[None], vh[: k - 1]]))
