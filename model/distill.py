"""Distillation: an ensemble of trained networks teaches one network of the shipped shape.

Consistent teaching: every training batch, exactly as augmented for the student, is also
shown to the teachers (eval mode, no gradient), and the student's cross-entropy target is
``alpha`` times the teachers' mean softmax plus ``1 - alpha`` times the label-smoothed
one-hot label. The student costs no more to run than any network of its shape; training
costs one forward pass per teacher more per batch.

Teachers are saved state dicts of :class:`model.net.TinyCNN`: a CV run's fold networks
(:func:`fold_net_path`, written by :mod:`model.cv`) or a final-protocol network written by
``model.train --save-net``. The state dict carries its own channel statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn import functional as F

from model.data import CACHE_DIR
from model.metrics import LABELS
from model.net import TinyCNN


def fold_net_path(run: str, fold: int) -> Path:
    """Where :mod:`model.cv` saves fold ``fold``'s network of run ``run``."""
    return CACHE_DIR / f"cv-{run}-fold{fold}.pt"


def save_net(net: TinyCNN, path: Path) -> None:
    """Write ``net``'s state dict (weights, batch-norm statistics, channel statistics)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)


def load_net(path: Path, arch: str) -> TinyCNN:
    """A network of layer spec ``arch`` with the weights saved at ``path``, in eval mode."""
    if not path.is_file():
        raise FileNotFoundError(f"no saved network at {path}")
    net = TinyCNN(arch, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    net.load_state_dict(torch.load(path, weights_only=True))
    net.eval()
    return net


class Teachers:
    """The mean softmax of a few trained networks, as a training target."""

    def __init__(self, nets: Sequence[torch.nn.Module], alpha: float) -> None:
        """Teach with ``nets``; ``alpha`` is the teachers' share of the target (0..1]."""
        if not nets:
            raise ValueError("distillation needs at least one teacher")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"the teachers' share must be in (0, 1], got {alpha!r}")
        self.nets = list(nets)
        self.alpha = alpha
        for net in self.nets:
            net.eval()

    @classmethod
    def from_paths(cls, paths: Sequence[Path], arch: str, alpha: float) -> Teachers:
        """Teachers loaded from saved state dicts of layer spec ``arch``."""
        return cls([load_net(p, arch) for p in paths], alpha)

    def probs(self, xb: torch.Tensor) -> torch.Tensor:
        """The teachers' mean softmax on an NCHW batch (no gradient)."""
        with torch.no_grad():
            return torch.stack([F.softmax(net(xb), dim=1) for net in self.nets]).mean(0)

    def target(self, xb: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
        """The student's target distribution for batch ``xb`` with labels ``y``."""
        onehot = F.one_hot(y, len(LABELS)).float()
        hard = onehot * (1.0 - smoothing) + smoothing / len(LABELS)
        return self.alpha * self.probs(xb) + (1.0 - self.alpha) * hard
