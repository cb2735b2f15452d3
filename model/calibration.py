"""Temperature scaling and how well probabilities are calibrated (ECE, reliability diagram).

One scalar temperature ``T`` rescales the log-probabilities, ``softmax(log p / T)``, which
is ``softmax(logits / T)`` for a softmax output: it changes how sure the scores are, never
which label is on top. ``T`` is fit by minimising the negative log-likelihood on
out-of-fold predictions (never on ``test``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from model.metrics import PROB_FLOOR, nll

Probs = npt.NDArray[np.floating[Any]]
Labels = npt.NDArray[np.int64]

ECE_BINS = 15  #: equal-width confidence bins of the expected calibration error
T_RANGE = (0.05, 20.0)  #: the temperatures searched
T_DECIMALS = 4  #: the fitted temperature is rounded so graph, metadata and card agree


def apply_temperature(probs: Probs, temperature: float) -> npt.NDArray[np.float64]:
    """``softmax(log p / T)`` row by row (probabilities floored at 1e-8 before the log)."""
    z = np.log(np.maximum(np.asarray(probs, dtype=np.float64), PROB_FLOOR)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


def fit_temperature(probs: Probs, labels: Labels) -> float:
    """The temperature minimising the NLL of ``apply_temperature(probs, T)``.

    Golden-section search on ``log T`` over :data:`T_RANGE` (the NLL is unimodal in it),
    rounded to :data:`T_DECIMALS` decimals.
    """
    lo, hi = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    ratio = (math.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return nll(apply_temperature(probs, math.exp(log_t)), labels)

    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(80):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return round(math.exp((lo + hi) / 2), T_DECIMALS)


@dataclass(frozen=True)
class Reliability:
    """Top-label reliability per equal-width confidence bin (empty bins have ``count`` 0)."""

    edges: npt.NDArray[np.float64]
    confidence: npt.NDArray[np.float64]
    accuracy: npt.NDArray[np.float64]
    count: npt.NDArray[np.int64]

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean |accuracy - confidence|."""
        gap = np.abs(self.accuracy - self.confidence) * self.count
        return float(gap.sum() / max(int(self.count.sum()), 1))


def reliability(probs: Probs, labels: Labels, bins: int = ECE_BINS) -> Reliability:
    """Bin images by their top score into ``bins`` bins of (0, 1]; accuracy per bin."""
    p = np.asarray(probs, dtype=np.float64)
    top = p.max(axis=1)
    right = p.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, top, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=top, minlength=bins) / count
        accuracy = np.bincount(which, weights=right.astype(np.float64), minlength=bins) / count
    return Reliability(edges, np.nan_to_num(confidence), np.nan_to_num(accuracy), count)


def ece(probs: Probs, labels: Labels, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the top label, ``bins`` equal-width bins."""
    return reliability(probs, labels, bins).ece


def cross_fitted(probs: Probs, labels: Labels, folds: Labels) -> npt.NDArray[np.float64]:
    """Every fold calibrated with the temperature fit on the other folds.

    A check of how much the in-sample figures of one fitted ``T`` flatter it.
    """
    out = np.zeros(np.shape(probs), dtype=np.float64)
    for fold in np.unique(folds):
        rest = folds != fold
        temperature = fit_temperature(np.asarray(probs)[rest], labels[rest])
        out[folds == fold] = apply_temperature(np.asarray(probs)[folds == fold], temperature)
    return out


def plot_reliability(before: Reliability, after: Reliability, title: str, path: Path) -> None:
    """Write a before/after reliability diagram (bars: accuracy per bin) as an SVG.

    The figure holds only binned counts and rates, no image data. Its SVG is written
    without a date and with fixed element ids, so the same figures give the same file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "allscreen"
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, rel, name in zip(axes, (before, after), ("before", "after"), strict=True):
        width = np.diff(rel.edges)
        used = rel.count > 0
        ax.bar(
            rel.edges[:-1][used],
            rel.accuracy[used],
            width=width[used],
            align="edge",
            edgecolor="black",
            color="#4c72b0",
            label="accuracy in bin",
        )
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        ax.plot(
            rel.edges[:-1][used] + width[used] / 2,
            rel.confidence[used],
            "o",
            color="#dd8452",
            ms=3,
            label="mean top score in bin",
        )
        for x, n in zip(rel.edges[:-1][used], rel.count[used], strict=True):
            ax.text(x + width[0] / 2, 0.02, str(int(n)), ha="center", fontsize=6, rotation=90)
        ax.set_title(f"{name} temperature scaling: ECE {rel.ece * 100:.2f}%")
        ax.set_xlabel("top score (confidence)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy of the top label")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
