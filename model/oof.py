"""The out-of-fold result of a cross-validation run (:mod:`model.cv`), saved as npz.

It holds no image data: per image only its four out-of-fold probabilities, its label and
its fold, so :mod:`model.calibrate` can fit the temperature and the operating point
without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from model.data import CACHE_DIR


@dataclass(frozen=True)
class OutOfFold:
    """A CV run's out-of-fold softmax ``probs`` ``[N, 4]``, with each image's label and fold."""

    probs: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    folds: npt.NDArray[np.int64]

    def save(self, name: str) -> None:
        """Write ``cv-<name>.npz`` in the training cache."""
        np.savez(CACHE_DIR / f"cv-{name}.npz", oof=self.probs, y=self.labels, folds=self.folds)

    @classmethod
    def load(cls, name: str) -> OutOfFold:
        """Read what :meth:`save` wrote for run ``name``."""
        saved = np.load(CACHE_DIR / f"cv-{name}.npz")
        return cls(probs=saved["oof"], labels=saved["y"], folds=saved["folds"])

    def fold_errors(self) -> list[dict[str, int]]:
        """Images and errors of every fold."""
        wrong = self.probs.argmax(1) != self.labels
        return [
            {
                "fold": int(f),
                "n": int((self.folds == f).sum()),
                "errors": int(wrong[self.folds == f].sum()),
            }
            for f in np.unique(self.folds)
        ]
