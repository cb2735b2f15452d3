"""Seeded, CPU-only training recipe for the allscreen ALL reference model.

By default trains ONE tiny CNN (about 0.1 M parameters, ~26 M multiply-adds per image) on
the ``train`` split of the fixed data split for 40 epochs and keeps the best epoch on
``val``; one network keeps the latency near 0.5 ms per image on one core. Augmentation: the
8 dihedral transforms (smears have no orientation), integer shifts and a small colour
jitter; AdamW, cosine LR with one warm-up epoch, label smoothing 0.05. The network is
exported as ONE ONNX graph (``model/all_cnn96.onnx``). Options kept for experiments:
``--members K`` exports the averaged softmax of K networks (about K times the latency),
``--distill`` trains one more network on the K networks' mean softmax and exports only it,
``--tta`` averages the 8 dihedral views inside the graph (8 times the latency). The graph
takes the production features unchanged: float32 ``[N, S, S, 3]`` RGB HWC in 0..1 named
``image`` (``S`` = ``--size``, recorded as the ONNX metadata ``input_size`` that the
``.eim`` server reports in ``hello`` and the worker resizes to), and returns ``probs``
``[N, 4]`` in the order Benign, Early, Pre, Pro.

Run from the repository root (needs the ``train`` extra: torch and onnx)::

    .venv/bin/python -m model.train [--data ../shared/data/all] [--out model/all_cnn96.onnx]
                                    [--size S] [--arch SPEC] [--epochs 40] [--seed 0]

The committed model (deploy version 3) is ``--norm stats`` with every other default; the
default ``--norm dataset`` is the recipe of deploy version 2 (see ``model/MODEL_CARD.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import torch
from torch import nn
from torch.nn import functional as F

from model import pin
from model.evaluate import (
    INPUT_SIZE,
    LABELS,
    REPO_ROOT,
    default_data_dir,
    evaluate,
    format_report,
    load_split,
    make_session,
    preprocess_uint8,
)

PROJECT_NAME = "allscreen ALL reference"
DEPLOY_VERSION = "3"
OPSET = 17
CACHE_DIR = REPO_ROOT / "model" / ".train-cache"
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Config:
    """Hyper-parameters of one training run."""

    epochs: int = 40
    seed: int = 0
    members: int = 1
    size: int = INPUT_SIZE
    arch: str = "s16,c32,p,c48,p,c64,p,c96"
    class_balance: float = 0.0
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    warmup_epochs: int = 1
    jitter: float = 0.06
    shift: int = -1  # pixels; -1 = size // 16 (6 px at 96x96)
    threads: int = 2
    tta: bool = False
    distill: bool = False
    distill_alpha: float = 0.7
    norm: str = "dataset"  # "dataset": fixed train mean/std; "image": per-image, per-channel
    saturation: float = 0.0  # random saturation scale 1 +- saturation (0 = off)
    ema: float = 0.0  # decay of an exponential moving average of the weights (0 = off)
    mixup: float = 0.0  # Beta(a, a) mixup of image pairs and their labels (0 = off)
    stain: float = 0.0  # HED stain jitter strength (0 = off)

    @property
    def shift_px(self) -> int:
        """The random-shift range in pixels: ``shift``, or ``size // 16`` when -1."""
        return self.size // 16 if self.shift < 0 else self.shift


@dataclass
class Arrays:
    """Preprocessed uint8 images (N, S, S, 3) and integer labels of one split."""

    x: npt.NDArray[np.uint8]
    y: npt.NDArray[np.int64]


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def resolve_data_dir(data: str | None) -> Path:
    """Resolve ``--data``: absolute, relative to the CWD, or relative to the repo root."""
    if data is None:
        return default_data_dir()
    path = Path(data).expanduser()
    if path.is_absolute():
        return path
    for base in (Path.cwd(), REPO_ROOT):
        cand = (base / path).resolve()
        if (cand / "split.csv").is_file():
            return cand
    return (REPO_ROOT / path).resolve()


def load_arrays(data_dir: Path, size: int = INPUT_SIZE) -> dict[str, Arrays]:
    """Load every split through the production preprocessing at ``size``, cached as uint8.

    The cache lives under ``model/.train-cache/`` (git-ignored), keyed by the input size,
    the hash of ``split.csv`` and the preprocessing version. ``uint8 / 255.0`` in float32
    equals the production ``astype(float32) / 255.0`` exactly, so the cache loses nothing.
    """
    digest = hashlib.sha256((data_dir / "split.csv").read_bytes()).hexdigest()[:16]
    cache = CACHE_DIR / f"all{size}_v1_{digest}.npz"
    if cache.is_file():
        with np.load(cache) as npz:
            return {
                s: Arrays(x=npz[f"x_{s}"].astype(np.uint8), y=npz[f"y_{s}"].astype(np.int64))
                for s in SPLITS
            }
    out: dict[str, Arrays] = {}
    for split in SPLITS:
        items = load_split(data_dir, split)
        x = np.stack([preprocess_uint8(p, size) for p, _ in items])
        y = np.array([LABELS.index(lab) for _, lab in items], dtype=np.int64)
        out[split] = Arrays(x=x, y=y)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(
        tmp,
        x_train=out["train"].x,
        y_train=out["train"].y,
        x_val=out["val"].x,
        y_val=out["val"].y,
        x_test=out["test"].x,
        y_test=out["test"].y,
    )
    os.replace(tmp, cache)
    return out


def to_tensor(x: npt.NDArray[np.uint8]) -> torch.Tensor:
    """uint8 NHWC array -> float32 NHWC tensor in 0..1, exactly as production (÷255)."""
    return torch.from_numpy(x.astype(np.float32) / np.float32(255.0))


def augment(x: torch.Tensor, gen: torch.Generator, cfg: Config) -> torch.Tensor:
    """Randomly transform an NHWC float batch in 0..1 for training.

    A random dihedral transform (smears have no orientation), a random integer shift of up
    to ``cfg.shift_px`` pixels with reflection padding (no resampling, so no blur that the
    production input never has) and a small colour jitter of strength ``cfg.jitter``
    (per-channel gain, brightness, offset).
    """
    n, height, width = x.shape[0], x.shape[1], x.shape[2]
    # 8 dihedral views: optional transpose of H/W, then optional flips of each axis.
    codes = torch.randint(0, 8, (n,), generator=gen)
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
    pad = cfg.shift_px
    if pad > 0:
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
        x = torch.stack(crops).permute(0, 2, 3, 1)
    if cfg.stain > 0:
        x = stain_jitter(x, gen, cfg.stain)
    if cfg.jitter > 0:
        j = cfg.jitter
        gain = 1.0 + j * (2 * torch.rand((n, 1, 1, 3), generator=gen) - 1)
        bright = 1.0 + j * (2 * torch.rand((n, 1, 1, 1), generator=gen) - 1)
        offset = 0.5 * j * (2 * torch.rand((n, 1, 1, 1), generator=gen) - 1)
        x = (x * gain * bright + offset).clamp(0.0, 1.0)
    if cfg.saturation > 0:
        grey = x.mean(dim=3, keepdim=True)
        sat = 1.0 + cfg.saturation * (2 * torch.rand((n, 1, 1, 1), generator=gen) - 1)
        x = (grey + sat * (x - grey)).clamp(0.0, 1.0)
    return x.contiguous()


RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float32
)
"""Ruifrok & Johnston's haematoxylin, eosin and DAB optical-density vectors (rows)."""


def stain_jitter(x: torch.Tensor, gen: torch.Generator, sigma: float) -> torch.Tensor:
    """Jitter each image's stain concentrations in an H&E-like deconvolution space.

    Optical density ``-ln(x)`` is unmixed into three stain channels, each scaled by
    ``U(1 - sigma, 1 + sigma)`` and shifted by ``U(-sigma, sigma)`` (OD units), and mixed
    back (Tellez et al. 2018, "HED jitter"). ``x`` is an NHWC batch in 0..1.
    """
    n = x.shape[0]
    rgb_from_hed = RGB_FROM_HED / RGB_FROM_HED.norm(dim=1, keepdim=True)
    hed_from_rgb = torch.linalg.inv(rgb_from_hed)
    alpha = 1.0 + sigma * (2 * torch.rand((n, 1, 1, 3), generator=gen) - 1)
    beta = sigma * (2 * torch.rand((n, 1, 1, 3), generator=gen) - 1)
    od = -torch.log(x.clamp_min(1.0 / 255.0))
    hed = (od @ hed_from_rgb) * alpha + beta
    return torch.exp(-(hed @ rgb_from_hed)).clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------


NORMS = ("dataset", "image", "both", "stats")  #: input normalisations (see TinyCNN)


def conv_bn(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyCNN(nn.Module):
    """A small VGG-like CNN on NCHW input in 0..1 returning logits.

    ``arch`` is a comma-separated layer spec: ``sN`` a stride-2 3x3 conv/BN/ReLU to N
    channels, ``cN`` a stride-1 one, ``p`` a 2x2 max-pool. Global average pool, dropout and
    a linear classifier follow. ``norm="dataset"`` standardises the input with the fixed
    per-channel ``mean``/``std`` of the training set; ``norm="image"`` standardises every
    image by its own per-channel mean and standard deviation (a stain/colour normalisation
    that removes each image's colour cast and contrast). ``norm="both"`` feeds both views as
    six input channels; ``norm="stats"`` convolves the per-image standardised view and gives
    the classifier that image's six statistics (channel means and standard deviations, in
    units of the training set's) beside the pooled features.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self, arch: str, mean: Sequence[float], std: Sequence[float], norm: str = "dataset"
    ) -> None:
        """Build the network; ``mean``/``std`` are per-channel input statistics."""
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"bad norm {norm!r}")
        self.norm = norm
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        layers: list[nn.Module] = []
        cin = 6 if norm == "both" else 3
        for tok in arch.split(","):
            if tok == "p":
                layers.append(nn.MaxPool2d(2))
            elif tok[0] in "sc":
                cout = int(tok[1:])
                layers.append(conv_bn(cin, cout, stride=2 if tok[0] == "s" else 1))
                cin = cout
            else:
                raise ValueError(f"bad layer {tok!r} in arch {arch!r}")
        self.features = nn.Sequential(*layers)
        extra = 6 if norm == "stats" else 0
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(cin + extra, len(LABELS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, 4]`` for an NCHW batch in 0..1."""
        if self.norm == "dataset":
            return self.classify(self.features((x - self.mean) / self.std))
        mu = x.mean(dim=(2, 3), keepdim=True)
        sd = (x - mu).pow(2).mean(dim=(2, 3), keepdim=True).add(1e-4).sqrt()
        standardised = (x - mu) / sd
        if self.norm == "both":
            return self.classify(
                self.features(torch.cat([(x - self.mean) / self.std, standardised], dim=1))
            )
        pooled = self.features(standardised)
        if self.norm == "image":
            return self.classify(pooled)
        stats = torch.cat([(mu - self.mean) / self.std, sd / self.std], dim=1).flatten(1)
        return self.classify(pooled, stats)

    def classify(self, maps: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        """Global average pool of the feature ``maps`` (plus any ``extra`` features), logits."""
        return self.head(torch.cat([maps.mean(dim=(2, 3)), *extra], dim=1))


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
    return total + cin * len(LABELS)


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 dihedral transforms (rotations by 90 degrees and mirrors) of an NCHW batch."""
    t = x.transpose(2, 3)
    return [x, x.flip(3), x.flip(2), x.flip(2).flip(3), t, t.flip(3), t.flip(2), t.flip(2).flip(3)]


class ExportModel(nn.Module):
    """The deployed graph: NHWC 0..1 in, averaged softmax probabilities out.

    Averages the softmax of every member over the dihedral views (if ``tta``).
    """

    def __init__(self, members: Sequence[nn.Module], tta: bool) -> None:
        """Wrap trained ``members`` (each NCHW -> logits)."""
        super().__init__()
        self.members = nn.ModuleList(members)
        self.tta = tta

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``probs`` ``[N, 4]`` for ``image`` ``[N, S, S, 3]``."""
        x = image.permute(0, 3, 1, 2)
        views = dihedral_views(x) if self.tta else [x]
        batch = torch.cat(views, dim=0)
        probs: torch.Tensor | None = None
        for member in self.members:
            p = F.softmax(member(batch), dim=1)
            probs = p if probs is None else probs + p
        assert probs is not None
        probs = probs.reshape(len(views), -1, len(LABELS)).mean(dim=0)
        return probs / float(len(self.members))


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and make torch deterministic."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def predict_probs(net: nn.Module, x: torch.Tensor, tta: bool, batch: int = 256) -> torch.Tensor:
    """Mean softmax of ``net`` over an NHWC float batch (dihedral views if ``tta``)."""
    net.eval()
    outs: list[torch.Tensor] = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            xb = x[i : i + batch].permute(0, 3, 1, 2)
            views = dihedral_views(xb) if tta else [xb]
            p = torch.stack([F.softmax(net(v), dim=1) for v in views]).mean(dim=0)
            outs.append(p)
    return torch.cat(outs)


def teacher_probs(teachers: Sequence[nn.Module], xb: torch.Tensor) -> torch.Tensor:
    """Mean softmax of the frozen ``teachers`` (in eval mode) on an NCHW batch."""
    with torch.no_grad():
        return torch.stack([F.softmax(t(xb), dim=1) for t in teachers]).mean(dim=0)


def train_member(
    cfg: Config,
    member_seed: int,
    data: dict[str, Arrays],
    mean: Sequence[float],
    std: Sequence[float],
    teachers: Sequence[nn.Module] = (),
    select: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train one network; return it at its best validation epoch, plus a log.

    With ``teachers``, the loss is ``(1 - a) * CE(label) + a * CE(teacher probs)`` with
    ``a = cfg.distill_alpha``: knowledge distillation from the teachers' mean softmax,
    computed on the same augmented batch the student sees. With ``cfg.ema`` the returned
    (and validated) weights are the exponential moving average of the trained ones; with
    ``cfg.mixup`` every batch is mixed with a shuffled copy of itself. With
    ``select=False`` no split is looked at during training and the last epoch is returned
    (``data["val"]`` is not needed): the cross-validation protocol of :mod:`model.cv`.
    """
    for t in teachers:
        t.eval()
    torch.manual_seed(member_seed)
    gen = torch.Generator().manual_seed(member_seed)
    net = TinyCNN(cfg.arch, mean, std, norm=cfg.norm)
    ema_net: TinyCNN | None = None
    if cfg.ema > 0:
        ema_net = TinyCNN(cfg.arch, mean, std, norm=cfg.norm)
        ema_net.load_state_dict(net.state_dict())
        ema_net.requires_grad_(False)
    x_train = to_tensor(data["train"].x)
    y_train = torch.from_numpy(data["train"].y)
    x_val = to_tensor(data["val"].x) if select else None
    y_val = torch.from_numpy(data["val"].y) if select else None
    # Class weights (n_c)^-class_balance, normalised to mean 1 over the training images.
    counts = torch.bincount(y_train, minlength=len(LABELS)).double()
    weights = counts.pow(-cfg.class_balance)
    weights = (weights * len(y_train) / float((weights * counts).sum())).float()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(y_train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_epochs * steps_per_epoch
    mix_rng = np.random.default_rng(member_seed) if cfg.mixup > 0 else None
    step = 0
    best: tuple[float, float] = (-1.0, float("inf"))
    best_state: dict[str, torch.Tensor] = {}
    history: list[dict[str, float]] = []
    for epoch in range(cfg.epochs):
        net.train()
        t0 = time.perf_counter()
        perm = torch.randperm(len(y_train), generator=gen)
        running = 0.0
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            xb = augment(x_train[idx], gen, cfg).permute(0, 3, 1, 2)
            yb = y_train[idx]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup, cfg.lr)
            if mix_rng is not None:
                # Mixup: lam from Beta(a, a) (seeded), the larger weight on the batch's labels.
                lam = float(mix_rng.beta(cfg.mixup, cfg.mixup))
                lam = max(lam, 1.0 - lam)
                pair = torch.randperm(len(idx), generator=gen)
                xb = lam * xb + (1.0 - lam) * xb[pair]
                logits = net(xb)
                ce = partial_ce(logits, weights, cfg.label_smoothing)
                loss = lam * ce(yb) + (1.0 - lam) * ce(yb[pair])
            else:
                logits = net(xb)
                loss = F.cross_entropy(
                    logits, yb, weight=weights, label_smoothing=cfg.label_smoothing
                )
            if teachers:
                soft = teacher_probs(teachers, xb)
                kd = -(soft * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
                loss = (1.0 - cfg.distill_alpha) * loss + cfg.distill_alpha * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema_net is not None:
                update_ema(ema_net, net, cfg.ema)
            running += float(loss.detach()) * len(idx)
            step += 1
        judged = ema_net if ema_net is not None else net
        if x_val is None or y_val is None:
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": running / len(y_train),
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(
                f"  seed {member_seed} epoch {epoch + 1:>3}/{cfg.epochs} "
                f"loss {running / len(y_train):.4f} ({time.perf_counter() - t0:.1f}s)",
                flush=True,
            )
            continue
        # Select on val without TTA (cheap); ties broken by val loss.
        probs = predict_probs(judged, x_val, tta=False)
        val_acc = float((probs.argmax(1) == y_val).float().mean())
        val_nll = float(F.nll_loss(probs.clamp_min(1e-8).log(), y_val))
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": running / len(y_train),
                "val_acc": val_acc,
                "val_nll": val_nll,
                "seconds": time.perf_counter() - t0,
            }
        )
        print(
            f"  seed {member_seed} epoch {epoch + 1:>3}/{cfg.epochs} "
            f"loss {running / len(y_train):.4f} val_acc {val_acc * 100:.2f}% "
            f"val_nll {val_nll:.4f} ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
        # Only consider the second half of the schedule, where the LR has decayed.
        if epoch + 1 >= cfg.epochs // 2 and (val_acc, -val_nll) >= (best[0], -best[1]):
            best = (val_acc, val_nll)
            best_state = {k: v.detach().clone() for k, v in judged.state_dict().items()}
    result = ema_net if ema_net is not None else net
    if best_state:
        result.load_state_dict(best_state)
    result.eval()
    return result, {
        "seed": member_seed,
        "best_val_acc": best[0],
        "best_val_nll": best[1],
        "history": history,
    }


def partial_ce(
    logits: torch.Tensor, weights: torch.Tensor, smoothing: float
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Cross-entropy of ``logits`` against a label tensor, as a function of the labels."""

    def ce(target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=weights, label_smoothing=smoothing)

    return ce


def update_ema(ema_net: nn.Module, net: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * net`` for parameters and float buffers.

    Integer buffers (batch-norm step counters) are copied.
    """
    with torch.no_grad():
        for e, p in zip(ema_net.parameters(), net.parameters(), strict=True):
            e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
        for eb, b in zip(ema_net.buffers(), net.buffers(), strict=True):
            if eb.is_floating_point():
                eb.mul_(decay).add_(b, alpha=1.0 - decay)
            else:
                eb.copy_(b)


def export_onnx(
    model: nn.Module, out: Path, extra_meta: dict[str, str], size: int = INPUT_SIZE
) -> None:
    """Export ``model`` to ``out`` with the production contract and metadata.

    The input is ``[N, size, size, 3]``, and ``size`` is written as the ``input_size``
    metadata that the ``.eim`` server reports in ``hello`` (and ``model.evaluate`` reads).
    """
    model.eval()
    dummy = torch.zeros(1, size, size, 3, dtype=torch.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo (needs onnxscript).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(tmp),
            input_names=["image"],
            output_names=["probs"],
            dynamic_axes={"image": {0: "N"}, "probs": {0: "N"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    meta = {
        "labels": json.dumps(list(LABELS)),
        "project_name": PROJECT_NAME,
        "deploy_version": DEPLOY_VERSION,
        "input_size": str(size),
        **extra_meta,
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value
    proto.doc_string = "allscreen ALL reference classifier (see model/MODEL_CARD.md)"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse command-line arguments."""
    d = Config()
    p = argparse.ArgumentParser(description="Train and export the allscreen ALL model.")
    p.add_argument("--data", default=None, help="data dir (default ../shared/data/all)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "model" / "all_cnn96.onnx")
    p.add_argument("--size", type=int, default=d.size, help="square input side in pixels")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--members", type=int, default=d.members, help="ensemble size (teachers with --distill)"
    )
    p.add_argument("--arch", default=d.arch, help="layer spec, see TinyCNN")
    p.add_argument(
        "--shift", type=int, default=d.shift, help="max random shift in px (-1: size // 16)"
    )
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads")
    p.add_argument(
        "--norm",
        default=d.norm,
        choices=NORMS,
        help="input standardisation: fixed train statistics, each image's own, both as six "
        "channels, or each image's own plus its statistics to the classifier (stats)",
    )
    p.add_argument("--jitter", type=float, default=d.jitter, help="colour jitter strength")
    p.add_argument(
        "--saturation", type=float, default=d.saturation, help="saturation jitter (0 = off)"
    )
    p.add_argument("--ema", type=float, default=d.ema, help="weight EMA decay (0 = off)")
    p.add_argument("--mixup", type=float, default=d.mixup, help="mixup Beta alpha (0 = off)")
    p.add_argument("--stain", type=float, default=d.stain, help="HED stain jitter (0 = off)")
    p.add_argument("--tta", action="store_true", help="average the 8 dihedral views in graph")
    p.add_argument(
        "--distill", action="store_true", help="distil the members into one exported network"
    )
    p.add_argument(
        "--report",
        default="val,test",
        help="splits to evaluate the exported model on (comma-separated; '' for none)",
    )
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> Config:
    """The training configuration the command-line options ask for."""
    return Config(
        epochs=args.epochs,
        seed=args.seed,
        members=args.members,
        size=args.size,
        arch=args.arch,
        shift=args.shift,
        threads=args.threads,
        tta=args.tta,
        distill=args.distill,
        norm=args.norm,
        jitter=args.jitter,
        saturation=args.saturation,
        ema=args.ema,
        mixup=args.mixup,
        stain=args.stain,
    )


def start_run(cfg: Config, data: str | None) -> Path:
    """Pin the threads and seeds for `cfg`; the data folder to read."""
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    return resolve_data_dir(data)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, export and evaluate; print the test figures."""
    args = parse_args(argv)
    cfg = config_from_args(args)
    t_start = time.perf_counter()
    data_dir = start_run(cfg, args.data)
    print(f"data {data_dir}  config {cfg}", flush=True)
    macs = arch_macs(cfg.arch, cfg.size) * cfg.members * (8 if cfg.tta else 1)
    print(f"input {cfg.size}x{cfg.size}, {macs / 1e6:.1f} M multiply-adds per image", flush=True)
    data = load_arrays(data_dir, cfg.size)
    for split, arr in data.items():
        counts = np.bincount(arr.y, minlength=len(LABELS)).tolist()
        print(f"  {split}: {len(arr.y)} images {dict(zip(LABELS, counts, strict=True))}")
    xf = data["train"].x.astype(np.float32) / np.float32(255.0)
    mean = [float(v) for v in xf.mean(axis=(0, 1, 2))]
    std = [float(v) for v in xf.std(axis=(0, 1, 2))]
    members: list[nn.Module] = []
    for k in range(cfg.members):
        member, log = train_member(cfg, cfg.seed * 1000 + k, data, mean, std)
        members.append(member)
        print(f"member {k}: best val acc {log['best_val_acc'] * 100:.2f}%", flush=True)
    if cfg.distill and members:
        student, log = train_member(
            cfg, cfg.seed * 1000 + cfg.members, data, mean, std, teachers=members
        )
        print(f"student: best val acc {log['best_val_acc'] * 100:.2f}%", flush=True)
        members = [student]
    model = ExportModel(members, tta=cfg.tta)
    train_seconds = time.perf_counter() - t_start
    export_onnx(
        model,
        args.out,
        {"train_config": json.dumps(cfg.__dict__), "train_seconds": f"{train_seconds:.0f}"},
        size=cfg.size,
    )
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.1f} KiB) after {train_seconds:.1f}s training")
    if args.out.resolve() == pin.WEIGHTS:  # new default weights: a new model identity
        print(f"{pin.LAUNCHER.name} now pins sha256 {pin.pin()}")
    # Check the export against torch on val, then report test via onnxruntime.
    with torch.no_grad():
        ref = model(to_tensor(data["val"].x[:16])).numpy()
    sess = make_session(args.out)
    got = np.asarray(sess.run(None, {"image": data["val"].x[:16].astype(np.float32) / 255.0})[0])
    print(f"onnx vs torch max abs diff on 16 val images: {float(np.abs(got - ref).max()):.2e}")
    cv2.setNumThreads(1)
    for split in [s for s in args.report.split(",") if s]:
        print(format_report(evaluate(args.out, data_dir, split)), flush=True)
    print(f"total wall time {time.perf_counter() - t_start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
