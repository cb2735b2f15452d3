"""Synthetic smear-like images: what `allscreen demo` screens when no archive is at hand."""

from __future__ import annotations

from pathlib import Path

SYNTHETIC_DIR = Path("allscreen-demo-synthetic")  #: where synthetic images go, in the cwd
SYNTHETIC_COUNT = 12  #: images made when there is nothing to screen


def make_synthetic_images(folder: Path, count: int = SYNTHETIC_COUNT, *, seed: int = 0) -> Path:
    """Write `count` synthetic smear-like images (random stained blobs) into `folder`."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = np.full((224, 224, 3), (200, 180, 220), dtype=np.uint8)
        for _ in range(12):
            centre = (int(rng.integers(20, 204)), int(rng.integers(20, 204)))
            colour = tuple(int(c) for c in rng.integers(60, 200, 3))
            cv2.circle(img, centre, int(rng.integers(8, 30)), colour, -1)
        cv2.imwrite(str(folder / f"synthetic-{seed}-{i:03d}.jpg"), img)
    return folder
