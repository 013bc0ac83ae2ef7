"""Agreement of a binary judge with human labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workbench.errors import WorkbenchError
from workbench.evaluation.stats import as_flags


def judge_agreement(predicted: Sequence[bool], human: Sequence[bool]) -> dict:
    """Agreement of a binary judge with human labels (True = refusal, the positive class).

    Returns n, accuracy, precision, recall, F1, Cohen's kappa (NaN where undefined, e.g. no
    predicted positives) and the confusion counts tp/fp/fn/tn.
    """
    from sklearn import metrics

    pred, true = as_flags(predicted, "predicted"), as_flags(human, "human")
    if len(pred) != len(true):
        raise WorkbenchError(
            f"{len(pred)} predicted labels but {len(true)} human labels; give one of each per item"
        )
    if len(pred) == 0:
        raise WorkbenchError("no labels to compare; give at least one predicted/human pair")
    nan = float("nan")
    return {
        "n": len(pred),
        "accuracy": float(metrics.accuracy_score(true, pred)),
        "precision": float(metrics.precision_score(true, pred, zero_division=nan)),
        "recall": float(metrics.recall_score(true, pred, zero_division=nan)),
        "f1": float(metrics.f1_score(true, pred, zero_division=nan)),
        "kappa": float(metrics.cohen_kappa_score(true, pred)),
        "tp": int((pred & true).sum()), "fp": int((pred & ~true).sum()),
        "fn": int((~pred & true).sum()), "tn": int((~pred & ~true).sum()),
    }


def grouped_bootstrap(predicted: Sequence[bool], human: Sequence[bool], groups: Sequence,
                      n_resamples: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap CIs for accuracy and Cohen's kappa that resample groups, not rows.

    Answers to one request (a group) are not independent: a judge that misreads a request
    tends to misread all its answers, so a row bootstrap gives too narrow an interval. Each
    resample draws ``len(unique(groups))`` groups with replacement (the draws are
    ``default_rng(seed).integers(0, n_groups, (n_resamples, n_groups))``, groups numbered in
    sorted order) and keeps all rows of every drawn group. Resamples where kappa is undefined
    (both labelings a single, shared class) are dropped from its interval.

    Returns ``accuracy_ci``, ``kappa_ci`` ([low, high]), ``n_groups``, ``n_resamples`` and
    ``kappa_resamples`` (how many had a defined kappa). Pure numpy, seeded.
    """
    pred, true = as_flags(predicted, "predicted"), as_flags(human, "human")
    groups = np.asarray(groups)
    if not len(pred) == len(true) == len(groups):
        raise WorkbenchError(f"{len(pred)} predicted labels, {len(true)} human labels and "
                             f"{len(groups)} groups; give one of each per item")
    if len(pred) == 0:
        raise WorkbenchError("no labels to compare; give at least one predicted/human pair")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise WorkbenchError(f"n_resamples is {n_resamples!r}; give a positive whole number")
    if not 0 < level < 1:
        raise WorkbenchError(f"level is {level!r}; give a confidence level between 0 and 1")
    _, group_of = np.unique(groups, return_inverse=True)
    n_groups = int(group_of.max()) + 1
    cells = np.zeros((n_groups, 4))  # per group: counts of (human, predicted) = 00, 01, 10, 11
    np.add.at(cells, (group_of, 2 * true.astype(int) + pred.astype(int)), 1.0)
    draws = np.random.default_rng(seed).integers(0, n_groups, (n_resamples, n_groups))
    tn, fp, fn, tp = cells[draws].sum(axis=1).T
    n = tn + fp + fn + tp
    observed = (tn + tp) / n
    chance = ((tp + fp) * (tp + fn) + (tn + fn) * (tn + fp)) / n ** 2
    defined = chance < 1
    kappa = (observed[defined] - chance[defined]) / (1 - chance[defined])
    tails = [50 * (1 - level), 50 * (1 + level)]
    return {
        "accuracy_ci": [float(v) for v in np.percentile(observed, tails)],
        "kappa_ci": ([float(v) for v in np.percentile(kappa, tails)] if kappa.size
                     else [float("nan")] * 2),
        "n_groups": n_groups, "n_resamples": n_resamples, "kappa_resamples": int(kappa.size),
    }
