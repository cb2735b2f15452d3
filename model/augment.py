"""Training-time augmentation of NHWC float batches in 0..1 (torch).

Smears have no orientation, so every batch gets a random one of the 8 dihedral transforms,
then a small integer shift (no resampling: production never sees interpolation blur) and a
small colour jitter.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as F


def to_tensor(x: npt.NDArray[np.uint8]) -> torch.Tensor:
    """uint8 NHWC array -> float32 NHWC tensor in 0..1, exactly as production (÷255)."""
    return torch.from_numpy(x.astype(np.float32) / np.float32(255.0))


def dihedral(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random dihedral transform per image: optional H/W transpose, then optional flips."""
    codes = torch.randint(0, 8, (x.shape[0],), generator=gen)
    x = x.clone()
    t_mask = (codes & 1).bool()
    if bool(t_mask.any()):
        x[t_mask] = x[t_mask].transpose(1, 2)
    h_mask = (codes & 2).bool()
    if bool(h_mask.any()):
        x[h_mask] = x[h_mask].flip(1)
    w_mask = (codes & 4).bool()
    if bool(w_mask.any()):
        x[w_mask] = x[w_mask].flip(2)
    return x


def shift(x: torch.Tensor, gen: torch.Generator, pad: int) -> torch.Tensor:
    """A random integer shift of up to ``pad`` pixels per image, with reflection padding."""
    n, height, width = x.shape[0], x.shape[1], x.shape[2]
    nchw = F.pad(x.permute(0, 3, 1, 2), (pad, pad, pad, pad), mode="reflect")
    offs = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen)
    crops = [
        nchw[
            i,
            :,
            int(offs[i, 0]) : int(offs[i, 0]) + height,
            int(offs[i, 1]) : int(offs[i, 1]) + width,
        ]
        for i in range(n)
    ]
    return torch.stack(crops).permute(0, 2, 3, 1)


def colour_jitter(x: torch.Tensor, gen: torch.Generator, strength: float) -> torch.Tensor:
    """Per-channel gain, brightness and offset, each within ``strength`` of neutral."""
    n = x.shape[0]
    gain = 1.0 + strength * (2 * torch.rand((n, 1, 1, 3), generator=gen) - 1)
    bright = 1.0 + strength * (2 * torch.rand((n, 1, 1, 1), generator=gen) - 1)
    offset = 0.5 * strength * (2 * torch.rand((n, 1, 1, 1), generator=gen) - 1)
    return (x * gain * bright + offset).clamp(0.0, 1.0)


RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float32
)
"""Ruifrok & Johnston's haematoxylin, eosin and DAB optical-density vectors (rows)."""


def stain_jitter(x: torch.Tensor, gen: torch.Generator, sigma: float) -> torch.Tensor:
    """Jitter each image's stain concentrations in an H&E-like deconvolution space.

    Optical density ``-ln(x)`` is unmixed into three stain channels, each scaled by
    ``U(1 - sigma, 1 + sigma)`` and shifted by ``U(-sigma, sigma)`` (OD units), and mixed
    back (Tellez et al. 2018, "HED jitter").
    """
    n = x.shape[0]
    rgb_from_hed = RGB_FROM_HED / RGB_FROM_HED.norm(dim=1, keepdim=True)
    hed_from_rgb = torch.linalg.inv(rgb_from_hed)
    alpha = 1.0 + sigma * (2 * torch.rand((n, 1, 1, 3), generator=gen) - 1)
    beta = sigma * (2 * torch.rand((n, 1, 1, 3), generator=gen) - 1)
    od = -torch.log(x.clamp_min(1.0 / 255.0))
    hed = (od @ hed_from_rgb) * alpha + beta
    return torch.exp(-(hed @ rgb_from_hed)).clamp(0.0, 1.0)


def augment(
    x: torch.Tensor, gen: torch.Generator, *, pad: int, jitter: float, stain: float = 0.0
) -> torch.Tensor:
    """Randomly transform an NHWC float batch in 0..1 for training.

    A dihedral transform, a shift of up to ``pad`` pixels, an optional stain jitter of
    strength ``stain`` and a colour jitter of strength ``jitter``. A step that is off draws
    no random numbers, so it leaves the others' draws unchanged.
    """
    x = dihedral(x, gen)
    if pad > 0:
        x = shift(x, gen, pad)
    if stain > 0:
        x = stain_jitter(x, gen, stain)
    if jitter > 0:
        x = colour_jitter(x, gen, jitter)
    return x.contiguous()
