"""The training data: every split of ``split.csv`` through the production preprocessing.

Images are read once, squash-resized exactly as in production
(:func:`model.evaluate.preprocess_uint8`) and cached as uint8 arrays under the git-ignored
``model/.train-cache/``; nothing cut from the images is ever committed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from model.evaluate import INPUT_SIZE, REPO_ROOT, default_data_dir, load_split, preprocess_uint8
from model.metrics import LABELS

CACHE_DIR = REPO_ROOT / "model" / ".train-cache"
"""Preprocessed arrays and cross-validation results (git-ignored)."""

SPLITS: tuple[str, ...] = ("train", "val", "test")
CACHE_VERSION = "v1"  #: bump when the preprocessing changes, so old caches are not reused


@dataclass
class Arrays:
    """Preprocessed uint8 images (N, S, S, 3) and integer labels of one split."""

    x: npt.NDArray[np.uint8]
    y: npt.NDArray[np.int64]


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

    The cache is keyed by the input size, the hash of ``split.csv`` and the preprocessing
    version. ``uint8 / 255.0`` in float32 equals the production ``astype(float32) / 255.0``
    exactly, so the cache loses nothing.
    """
    digest = hashlib.sha256((data_dir / "split.csv").read_bytes()).hexdigest()[:16]
    cache = CACHE_DIR / f"all{size}_{CACHE_VERSION}_{digest}.npz"
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
    tmp = cache.with_name(cache.stem + f".{os.getpid()}.tmp.npz")
    arrays = {f"{kind}_{s}": getattr(out[s], kind) for s in SPLITS for kind in ("x", "y")}
    np.savez(tmp, **arrays)
    os.replace(tmp, cache)
    return out


def channel_stats(x: npt.NDArray[np.uint8]) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 NHWC images, in units of 0..1."""
    xf = x.astype(np.float32) / np.float32(255.0)
    return [float(v) for v in xf.mean(axis=(0, 1, 2))], [float(v) for v in xf.std(axis=(0, 1, 2))]
