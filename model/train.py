"""Seeded, CPU-only training recipe of the allscreen ALL reference model.

With its defaults it rebuilds the shipped model (deploy version 4, ``model/MODEL_CARD.md``):
ONE tiny CNN (:class:`model.net.TinyCNN`, about 0.1 M parameters, ~26 M multiply-adds per
image) trained on the ``train`` split for 40 epochs, keeping the best epoch on ``val``
(among epochs 20-40). Augmentation (:mod:`model.augment`): the 8 dihedral transforms,
integer shifts and a small colour jitter; AdamW, cosine LR after one warm-up epoch, label
smoothing 0.05. The temperature and the screening operating point of
``model/calibration.json`` (written by :mod:`model.calibrate` from the out-of-fold
predictions of :mod:`model.cv`) are built into the exported graph and its metadata
(:mod:`model.export`).

Run from the repository root (needs the ``train`` extra: torch and onnx)::

    .venv/bin/python -m model.train [--data ../shared/data/all] [--out model/all_cnn96.onnx]
                                    [--calibration model/calibration.json] [--report val]

Writing the default ``--out`` re-pins the launcher (:mod:`model.pin`).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from model import pin
from model.augment import augment, to_tensor
from model.data import Arrays, channel_stats, load_arrays, resolve_data_dir
from model.evaluate import INPUT_SIZE, REPO_ROOT, evaluate, format_report, make_session
from model.export import calibration_metadata, export_onnx
from model.metrics import LABELS
from model.net import DEFAULT_ARCH, ServedModel, TinyCNN, arch_macs

DEFAULT_CALIBRATION = REPO_ROOT / "model" / "calibration.json"
"""Temperature and operating point of the shipped recipe (from ``model.calibrate``)."""


@dataclass(frozen=True)
class Config:
    """Hyper-parameters of one training run; the defaults are the shipped recipe."""

    epochs: int = 40
    seed: int = 0
    size: int = INPUT_SIZE
    arch: str = DEFAULT_ARCH
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    warmup_epochs: int = 1
    jitter: float = 0.06
    shift: int = -1  # pixels; -1 = size // 16 (6 px at 96x96)
    stain: float = 0.0  # HED stain jitter strength (0 = off)
    threads: int = 1

    @property
    def shift_px(self) -> int:
        """The random-shift range in pixels: ``shift``, or ``size // 16`` when -1."""
        return self.size // 16 if self.shift < 0 else self.shift


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


def predict_probs(net: torch.nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Softmax of ``net`` (temperature 1) over an NHWC float batch."""
    net.eval()
    with torch.no_grad():
        outs = [
            F.softmax(net(x[i : i + batch].permute(0, 3, 1, 2)), dim=1)
            for i in range(0, x.shape[0], batch)
        ]
    return torch.cat(outs)


def train_net(
    cfg: Config,
    seed: int,
    data: dict[str, Arrays],
    mean: Sequence[float],
    std: Sequence[float],
    select: bool = True,
) -> tuple[TinyCNN, dict[str, Any]]:
    """Train one network; return it at its best validation epoch, plus a log.

    The epoch is picked on ``data["val"]`` (best accuracy, ties broken by the lower NLL)
    among the second half of the schedule. With ``select=False`` no split is looked at
    and the last epoch is returned (``data["val"]`` is not needed): the cross-validation
    protocol of :mod:`model.cv`.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = TinyCNN(cfg.arch, mean, std)
    x_train = to_tensor(data["train"].x)
    y_train = torch.from_numpy(data["train"].y)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(y_train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_epochs * steps_per_epoch
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
            xb = augment(
                x_train[idx], gen, pad=cfg.shift_px, jitter=cfg.jitter, stain=cfg.stain
            ).permute(0, 3, 1, 2)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup, cfg.lr)
            loss = F.cross_entropy(net(xb), y_train[idx], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += float(loss.detach()) * len(idx)
            step += 1
        entry = {"epoch": epoch + 1.0, "train_loss": running / len(y_train)}
        line = f"  seed {seed} epoch {epoch + 1:>3}/{cfg.epochs} loss {entry['train_loss']:.4f}"
        if select:
            y_val = torch.from_numpy(data["val"].y)
            probs = predict_probs(net, to_tensor(data["val"].x))
            entry["val_acc"] = float((probs.argmax(1) == y_val).float().mean())
            entry["val_nll"] = float(F.nll_loss(probs.clamp_min(1e-8).log(), y_val))
            line += f" val_acc {entry['val_acc'] * 100:.2f}% val_nll {entry['val_nll']:.4f}"
            # Only the second half of the schedule, where the LR has decayed, is considered.
            score = (entry["val_acc"], -entry["val_nll"])
            if epoch + 1 >= cfg.epochs // 2 and score >= (best[0], -best[1]):
                best = (entry["val_acc"], entry["val_nll"])
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        entry["seconds"] = time.perf_counter() - t0
        history.append(entry)
        print(f"{line} ({entry['seconds']:.1f}s)", flush=True)
    if best_state:
        net.load_state_dict(best_state)
    net.eval()
    return net, {"seed": seed, "best_val_acc": best[0], "best_val_nll": best[1], "history": history}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse command-line arguments (every default is the shipped recipe)."""
    d = Config()
    p = argparse.ArgumentParser(description="Train and export the allscreen ALL model.")
    p.add_argument("--data", default=None, help="data dir (default ../shared/data/all)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "model" / "all_cnn96.onnx")
    p.add_argument("--size", type=int, default=d.size, help="square input side in pixels")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--arch", default=d.arch, help="layer spec, see model.net.TinyCNN")
    p.add_argument(
        "--shift", type=int, default=d.shift, help="max random shift in px (-1: size // 16)"
    )
    p.add_argument("--jitter", type=float, default=d.jitter, help="colour jitter strength")
    p.add_argument("--stain", type=float, default=d.stain, help="HED stain jitter (0 = off)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads")
    p.add_argument(
        "--calibration",
        default=str(DEFAULT_CALIBRATION),
        help="model.calibrate result whose temperature and operating point go into the "
        "graph and its metadata ('' for an uncalibrated export with no thresholds)",
    )
    p.add_argument(
        "--report",
        default="val",
        help="splits to evaluate the exported model on (comma-separated; '' for none)",
    )
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> Config:
    """The training configuration the command-line options ask for."""
    return Config(
        epochs=args.epochs,
        seed=args.seed,
        size=args.size,
        arch=args.arch,
        shift=args.shift,
        jitter=args.jitter,
        stain=args.stain,
        threads=args.threads,
    )


def start_run(cfg: Config, data: str | None) -> Path:
    """Pin the threads and seeds for ``cfg``; the data folder to read."""
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    return resolve_data_dir(data)


def load_calibration(path: str) -> dict[str, Any] | None:
    """The :mod:`model.calibrate` result at ``path`` (None for ``''``)."""
    if not path:
        return None
    result: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Train, export and evaluate on the ``--report`` splits."""
    args = parse_args(argv)
    cfg = config_from_args(args)
    calibration = load_calibration(args.calibration)
    t_start = time.perf_counter()
    data_dir = start_run(cfg, args.data)
    print(f"data {data_dir}  config {cfg}", flush=True)
    print(f"input {cfg.size}x{cfg.size}, {arch_macs(cfg.arch, cfg.size) / 1e6:.1f} M MACs/image")
    data = load_arrays(data_dir, cfg.size)
    for split, arr in data.items():
        counts = np.bincount(arr.y, minlength=len(LABELS)).tolist()
        print(f"  {split}: {len(arr.y)} images {dict(zip(LABELS, counts, strict=True))}")
    mean, std = channel_stats(data["train"].x)
    net, log = train_net(cfg, cfg.seed * 1000, data, mean, std)
    print(f"best val acc {log['best_val_acc'] * 100:.2f}% (val NLL {log['best_val_nll']:.4f})")
    meta = calibration_metadata(calibration)
    model = ServedModel(net, float(meta.get("temperature", "1")))
    train_seconds = time.perf_counter() - t_start
    meta |= {"train_config": json.dumps(asdict(cfg)), "train_seconds": f"{train_seconds:.0f}"}
    export_onnx(model, args.out, meta, size=cfg.size)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB), metadata {meta}")
    if args.out.resolve() == pin.WEIGHTS:  # new default weights: a new model identity
        print(f"{pin.LAUNCHER.name} now pins sha256 {pin.pin()}")
    x_check = data["val"].x[:16].astype(np.float32) / np.float32(255.0)
    with torch.no_grad():
        ref = model(torch.from_numpy(x_check))[0].numpy()
    got = np.asarray(make_session(args.out).run(["probs"], {"image": x_check})[0])
    print(f"onnx vs torch max abs diff on 16 val images: {float(np.abs(got - ref).max()):.2e}")
    cv2.setNumThreads(1)
    for split in [s for s in args.report.split(",") if s]:
        print(format_report(evaluate(args.out, data_dir, split)), flush=True)
    print(f"total wall time {time.perf_counter() - t_start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
