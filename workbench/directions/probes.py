"""Alternatives to difference-in-means: PCA of differences and a logistic-probe direction.

Each returns a unit direction per layer, sign-aligned with the difference in means so that
all three point from the negative set towards the positive set.
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from workbench.directions.diff_in_means import diff_in_means
from workbench.geometry import unit

Tensor = torch.Tensor


def _align(direction: Tensor, reference: Tensor) -> Tensor:
    return direction if float(direction @ reference) >= 0 else -direction


def pca_of_differences(
    differences: Float[Tensor, "n layer d"],
) -> Float[Tensor, "layer d"]:
    """Top right singular vector of the *uncentred* paired differences, per layer, signed to
    agree with their mean.

    Uncentred, so a shared shift counts as variance. On A/B contrast pairs that shift is not
    what dominates: each difference carries the answer letter's own activation ("(A" minus
    "(B", with the pair's sign), which is far larger than the behaviour, so this returns the
    letter axis. Use :func:`pca_of_letter_balanced` there.
    """
    out = []
    for l in range(differences.shape[1]):
        x = differences[:, l].double()
        pc = torch.linalg.svd(x, full_matrices=False).Vh[0]
        out.append(_align(pc, x.mean(0)))
    return torch.stack(out)


def pca_of_letter_balanced(
    differences: Float[Tensor, "n layer d"], swapped: Float[Tensor, "n layer d"],
) -> Float[Tensor, "layer d"]:
    """PCA of A/B contrast differences with the answer letter cancelled item by item.

    ``differences[i]`` is matching minus non-matching for item ``i``, ``swapped[i]`` the same
    for the item with its two choices swapped (:func:`workbench.data.swap_choices`), where the
    matching answer sits under the other letter. Their sum keeps the behaviour twice and the
    letter's activation with opposite signs, so the letter cancels up to how much its effect
    differs between the two layouts. Returns :func:`pca_of_differences` of the sums.
    """
    return pca_of_differences(differences + swapped)


def pca_direction(
    positive: Float[Tensor, "n layer d"], negative: Float[Tensor, "m layer d"]
) -> Float[Tensor, "layer d"]:
    """First principal component of the pooled, centred activations of both sets, per layer."""
    out = []
    for l in range(positive.shape[1]):
        x = torch.cat([positive[:, l], negative[:, l]]).double().numpy()
        pc = torch.from_numpy(PCA(n_components=1, svd_solver="full").fit(x).components_[0])
        out.append(_align(pc, diff_in_means(positive[:, l], negative[:, l])))
    return torch.stack(out)


def probe_direction(
    positive: Float[Tensor, "n layer d"],
    negative: Float[Tensor, "m layer d"],
    C: float = 1.0,
    seed: int = 0,
) -> tuple[Float[Tensor, "layer d"], Float[Tensor, " layer"]]:
    """Unit weight vector of an L2 logistic probe per layer, and its training accuracy."""
    dirs, accs = [], []
    y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    for l in range(positive.shape[1]):
        x = torch.cat([positive[:, l], negative[:, l]]).double().numpy()
        clf = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(x, y)
        dirs.append(unit(torch.from_numpy(clf.coef_[0])))
        accs.append(clf.score(x, y))
    return torch.stack(dirs), torch.tensor(accs, dtype=torch.float64)
