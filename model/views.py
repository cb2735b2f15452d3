"""Test-time views: the network run on a few flips of each image, its logits averaged.

Smears have no orientation, and training already shows every image in a random one of the
8 dihedral transforms, so a flipped image is as valid an input as the original; averaging
the logits of a few flips cuts the network's variance the way an ensemble does, for the
cost of running it once per view (one batch of ``views * N`` images). The views are flips
only (ONNX ``Slice`` with step -1, no transposes):

- 1 view: the image as it is (the network alone);
- 2 views: it and its left-right mirror;
- 4 views: it, its left-right and its top-bottom mirror, and both (a 180 degree turn).

:class:`MirrorAverage` wraps a network (NCHW in, logits out) and is itself one, so the
cross-validation (:mod:`model.cv`), the epoch choice (:mod:`model.train`) and the served
graph (:class:`model.net.ServedModel`) all see exactly the same views.
"""

from __future__ import annotations

import torch
from torch import nn

VIEW_COUNTS: tuple[int, ...] = (1, 2, 4)
"""The numbers of views a model may average."""


class MirrorAverage(nn.Module):
    """``net`` averaged over ``views`` flips of each NCHW image (mean of the logits)."""

    def __init__(self, net: nn.Module, views: int) -> None:
        """Wrap ``net``; ``views`` is one of :data:`VIEW_COUNTS`."""
        super().__init__()
        if views not in VIEW_COUNTS:
            raise ValueError(f"views must be one of {VIEW_COUNTS}, got {views!r}")
        self.net = net
        self.views = views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean logits ``[N, 4]`` over the views of ``x`` ``[N, C, H, W]``."""
        if self.views == 1:
            return self.net(x)
        batch = [x, torch.flip(x, dims=[3])]
        if self.views == 4:
            batch += [torch.flip(x, dims=[2]), torch.flip(x, dims=[2, 3])]
        logits = self.net(torch.cat(batch, dim=0))
        return logits.view(self.views, x.shape[0], -1).mean(dim=0)


def with_views(net: nn.Module, views: int) -> nn.Module:
    """``net`` itself for one view, else :class:`MirrorAverage` around it."""
    return net if views == 1 else MirrorAverage(net, views)
