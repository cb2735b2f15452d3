"""The network: a small VGG-like CNN on per-image standardised input, and its served graph."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from model.metrics import LABELS

DEFAULT_ARCH = "s16,c32,p,c48,p,c64,p,c96"
"""Layer spec of the shipped network (see :class:`TinyCNN`)."""

STAT_FEATURES = 6  #: per-image channel means and standard deviations given to the classifier


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyCNN(nn.Module):
    """A small VGG-like CNN on NCHW input in 0..1 returning logits.

    ``arch`` is a comma-separated layer spec: ``sN`` a stride-2 3x3 conv/BN/ReLU to N
    channels, ``cN`` a stride-1 one, ``p`` a 2x2 max-pool. Every image is standardised by
    its own per-channel mean and standard deviation before the convolutions (which removes
    its colour cast, brightness and contrast); those six statistics, in units of the
    training set's ``mean``/``std``, go to the linear classifier beside the globally
    average-pooled features, after dropout.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, arch: str, mean: Sequence[float], std: Sequence[float]) -> None:
        """Build the network; ``mean``/``std`` are the training set's channel statistics."""
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        layers: list[nn.Module] = []
        cin = 3
        for tok in arch.split(","):
            if tok == "p":
                layers.append(nn.MaxPool2d(2))
            elif tok and tok[0] in "sc":
                cout = int(tok[1:])
                layers.append(conv_bn(cin, cout, stride=2 if tok[0] == "s" else 1))
                cin = cout
            else:
                raise ValueError(f"bad layer {tok!r} in arch {arch!r}")
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(cin + STAT_FEATURES, len(LABELS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, 4]`` for an NCHW batch in 0..1."""
        mu = x.mean(dim=(2, 3), keepdim=True)
        sd = (x - mu).pow(2).mean(dim=(2, 3), keepdim=True).add(1e-4).sqrt()
        pooled = self.features((x - mu) / sd).mean(dim=(2, 3))
        stats = torch.cat([(mu - self.mean) / self.std, sd / self.std], dim=1).flatten(1)
        return self.head(torch.cat([pooled, stats], dim=1))


def arch_macs(arch: str, size: int) -> int:
    """Multiply-adds per image of ``TinyCNN(arch)`` on a ``size`` x ``size`` input."""
    side, cin, total = size, 3, 0
    for tok in arch.split(","):
        if tok == "p":
            side //= 2
        else:
            cout = int(tok[1:])
            if tok[0] == "s":
                side = (side + 1) // 2
            total += side * side * cout * cin * 9
            cin = cout
    return total + (cin + STAT_FEATURES) * len(LABELS)


class ServedModel(nn.Module):
    """The exported graph: NHWC 0..1 in; calibrated ``probs`` and raw ``logits`` out.

    ``probs = softmax(logits / temperature)``: temperature scaling, fit on out-of-fold
    predictions (:mod:`model.calibration`), is part of the graph, so every consumer of
    ``probs`` gets the calibrated scores. ``logits`` are the network's own, so the
    calibration can be checked (and refit) from the served file alone.
    """

    def __init__(self, net: nn.Module, temperature: float = 1.0) -> None:
        """Wrap a trained ``net`` (NCHW -> logits)."""
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.net = net
        self.temperature = float(temperature)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(probs, logits)``, each ``[N, 4]``, for ``image`` ``[N, S, S, 3]``."""
        # torch.cat of one tensor exports as a Concat node, a layout barrier: without it
        # onnxruntime 1.32 moves the NHWC->NCHW transpose into the per-image standardisation
        # and the graph runs 1.35x slower (measured 1 Dec 2026; deploy version 3 had it).
        logits = self.net(torch.cat([image.permute(0, 3, 1, 2)], dim=0))
        return F.softmax(logits / self.temperature, dim=1), logits
