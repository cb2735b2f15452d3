"""The screening operating point: when an image is negative, positive or sent to review.

The application's rule, for an image's calibrated scores (the negative labels' scores
summed into ``P(neg)``):

- **negative** if ``P(neg) >= min_negative_score`` (``t``) and ``top >= min_confidence`` (``r``);
- **positive** if its top label is not a negative label, ``top >= r`` and ``P(neg) < t``;
- **review** (a person looks) otherwise.

``t`` is chosen for the ALL sensitivity target (few ALL images with ``P(Benign) >= t``),
``r`` from the cost of review on out-of-fold predictions (:func:`review_table`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from model.metrics import LABELS

NEGATIVE, POSITIVE, REVIEW = 0, 1, 2  #: the decisions
DECISIONS = ("negative", "positive", "review")
NEGATIVE_LABELS: tuple[str, ...] = ("Benign",)  #: a screening negative is a Benign image
MAX_MISSED_SHARE = 0.0025  #: ALL sensitivity >= 99.75%: at most 1 ALL image in 400 negative
MAX_REVIEW_SHARE = 0.10  #: the review band may send at most this share of images to a person
REVIEW_GRID = tuple(round(0.50 + 0.01 * i, 2) for i in range(50))  #: r = 0.50 ... 0.99

Probs = npt.NDArray[np.floating[Any]]
Labels = npt.NDArray[np.int64]


def negative_mask(labels: Labels, negative_labels: Sequence[str] = NEGATIVE_LABELS) -> Any:
    """Which images' true labels are negative (Benign)."""
    return np.isin(labels, [LABELS.index(lab) for lab in negative_labels])


def p_negative(probs: Probs, negative_labels: Sequence[str] = NEGATIVE_LABELS) -> Any:
    """``P(neg)``: every image's scores of the negative labels, summed."""
    neg_idx = [LABELS.index(lab) for lab in negative_labels]
    return np.asarray(probs, dtype=np.float64)[:, neg_idx].sum(axis=1)


def decide(
    probs: Probs, t: float, r: float, negative_labels: Sequence[str] = NEGATIVE_LABELS
) -> npt.NDArray[np.int64]:
    """The decision (:data:`NEGATIVE`, :data:`POSITIVE`, :data:`REVIEW`) of every image."""
    p = np.asarray(probs, dtype=np.float64)
    neg_idx = [LABELS.index(lab) for lab in negative_labels]
    p_neg = p_negative(p, negative_labels)
    top = p.max(axis=1)
    top_is_negative = np.isin(p.argmax(axis=1), neg_idx)
    out = np.full(len(p), REVIEW, dtype=np.int64)
    out[(p_neg >= t) & (top >= r)] = NEGATIVE
    out[~top_is_negative & (top >= r) & (p_neg < t)] = POSITIVE
    return out


def choose_min_negative_score(
    probs: Probs, labels: Labels, max_missed_share: float = MAX_MISSED_SHARE
) -> float:
    """``t``: the smallest 3-decimal value with at most ``floor(share * n_ALL)`` ALL images
    at ``P(Benign) >= t``."""
    positives = ~negative_mask(labels)
    p_neg = np.sort(p_negative(probs)[positives])[::-1]
    allowed = math.floor(max_missed_share * len(p_neg) + 1e-9)
    if allowed >= len(p_neg):
        return 0.0
    t = (math.floor(float(p_neg[allowed]) * 1000 + 1e-9) + 1) / 1000  # just above the next
    assert int((p_neg >= t).sum()) <= allowed
    return t


def outcome(probs: Probs, labels: Labels, t: float, r: float) -> dict[str, Any]:
    """What the operating point ``(t, r)`` does to images of known label."""
    d = decide(probs, t, r)
    neg = negative_mask(labels)
    wrong_top = np.asarray(probs).argmax(axis=1) != labels
    missed = int(((d == NEGATIVE) & ~neg).sum())
    false_alarm = int(((d == POSITIVE) & neg).sum())
    return {
        "t": t,
        "r": r,
        "n": len(labels),
        "n_all": int((~neg).sum()),
        "n_benign": int(neg.sum()),
        "all_negative": missed,
        "all_review": int(((d == REVIEW) & ~neg).sum()),
        "benign_positive": false_alarm,
        "benign_review": int(((d == REVIEW) & neg).sum()),
        "benign_flagged": int((p_negative(probs)[neg] < t).sum()),
        "reviewed": int((d == REVIEW).sum()),
        "review_share": float((d == REVIEW).mean()),
        "screening_errors": missed + false_alarm,
        "top_label_errors": int(wrong_top.sum()),
        "top_label_errors_reviewed": int((wrong_top & (d == REVIEW)).sum()),
    }


def review_table(
    probs: Probs, labels: Labels, t: float, grid: Sequence[float] = REVIEW_GRID
) -> list[dict[str, Any]]:
    """:func:`outcome` at ``t`` for every review band ``r`` of ``grid``."""
    return [outcome(probs, labels, t, r) for r in grid]


def choose_min_confidence(
    table: Sequence[dict[str, Any]], max_review_share: float = MAX_REVIEW_SHARE
) -> float:
    """``r``: the smallest r at which the screening errors reach their minimum over the
    table, unless it reviews more than ``max_review_share``; then the largest r within it."""
    least = min(row["screening_errors"] for row in table)
    first = next(row for row in table if row["screening_errors"] == least)
    if first["review_share"] <= max_review_share:
        return float(first["r"])
    within = [row for row in table if row["review_share"] <= max_review_share]
    chosen = max(row["r"] for row in within) if within else table[0]["r"]
    return float(chosen)
