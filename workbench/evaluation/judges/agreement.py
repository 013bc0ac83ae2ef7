"""Agreement of a binary judge with human labels."""

from __future__ import annotations

from typing import Sequence

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
