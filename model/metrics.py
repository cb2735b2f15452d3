"""Classification metrics of predicted probabilities: confusion matrix, accuracy, recall, NLL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

LABELS: tuple[str, ...] = ("Benign", "Early", "Pre", "Pro")
"""Class label order of the model output."""

PROB_FLOOR = 1e-8  #: probabilities are clipped here before the log (a 0 would give inf)


def confusion_matrix(
    y_true: Sequence[int], y_pred: Sequence[int], n_classes: int = len(LABELS)
) -> npt.NDArray[np.int64]:
    """Return the confusion matrix, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        cm[t, p] += 1
    return cm


def metrics_from_confusion(cm: npt.NDArray[np.int64]) -> dict[str, Any]:
    """Accuracy and per-class precision/recall from a confusion matrix."""
    total = int(cm.sum())
    correct = int(np.trace(cm))
    per_class: dict[str, dict[str, float | int]] = {}
    for i, name in enumerate(LABELS):
        tp = int(cm[i, i])
        support = int(cm[i, :].sum())
        predicted = int(cm[:, i].sum())
        per_class[name] = {
            "support": support,
            "precision": tp / predicted if predicted else 0.0,
            "recall": tp / support if support else 0.0,
        }
    return {
        "n": total,
        "correct": correct,
        "accuracy": correct / total if total else 0.0,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
    }


def nll(probs: npt.NDArray[np.floating[Any]], labels: npt.NDArray[np.int64]) -> float:
    """Mean negative log-likelihood of the true labels (probabilities floored at 1e-8)."""
    picked = np.asarray(probs, dtype=np.float64)[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(picked, PROB_FLOOR)).mean())
