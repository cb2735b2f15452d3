"""Large images for the benchmarks, made at run time from the shared 224x224 smears.

A microscope camera's archive holds whole fields of view of 2-12 megapixels. Each shared image
is upscaled (bicubic) to a field size, given seeded Gaussian noise (so the file carries the
detail a real field's JPEG would, and compresses like one) and encoded as JPEG or TIFF. The
images never leave a temporary folder: nothing made from the shared set is committed.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from bench.common import DATA

NOISE_SIGMA = 4.0  #: grey levels of sensor-like noise added after upscaling
JPEG_QUALITY = 92  #: a camera's usual setting


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of large image: a field size and a file format."""

    name: str
    width: int
    height: int
    ext: str  #: "jpg" or "tif"

    @property
    def megapixels(self) -> float:
        """Pixels, in millions."""
        return self.width * self.height / 1e6


#: The kinds the section measures: 2 MP and 5 MP JPEG fields, 5 MP TIFFs.
KINDS = {
    k.name: k
    for k in (
        Kind("2mp-jpeg", 1600, 1200, "jpg"),
        Kind("5mp-jpeg", 2592, 1944, "jpg"),
        Kind("5mp-tiff", 2592, 1944, "tif"),
    )
}


def split_images(split: str = "test", limit: int | None = None) -> list[tuple[Path, str]]:
    """(path, label) of a split of the shared set, distinct files, in the split file's order."""
    if not (DATA / "split.csv").is_file():
        raise SystemExit(f"the large-image benchmarks need the ALL image set at {DATA}")
    seen: set[str] = set()
    out: list[tuple[Path, str]] = []
    with (DATA / "split.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["split"] == split and row["sha256"] not in seen:
                seen.add(row["sha256"])
                out.append((DATA / row["file"], row["label"]))
    return out[:limit] if limit else out


def upscaled(src: Path, kind: Kind, seed: int) -> npt.NDArray[np.uint8]:
    """The BGR pixels of `src` upscaled to `kind`'s field size, with noise seeded by `seed`."""
    small = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if small is None:
        raise SystemExit(f"cannot read {src}")
    big = cv2.resize(small, (kind.width, kind.height), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(seed).standard_normal(big.shape, dtype=np.float32)
    noisy = big.astype(np.float32) + noise * np.float32(NOISE_SIGMA)
    return cast(npt.NDArray[np.uint8], np.clip(noisy, 0, 255).round().astype(np.uint8))


def encoded(pixels: npt.NDArray[np.uint8], kind: Kind) -> bytes:
    """`pixels` as the bytes of a `kind` file."""
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if kind.ext == "jpg" else []
    ok, buf = cv2.imencode(f".{kind.ext}", pixels, params)
    if not ok:
        raise SystemExit(f"cannot encode a {kind.name} image")
    return bytes(buf.tobytes())


def large_images(
    kind: Kind, sources: list[tuple[Path, str]], *, seed: int = 0
) -> Iterator[tuple[Path, str, bytes]]:
    """(source, label, bytes of its large version) for each source, seeded per image."""
    for i, (src, label) in enumerate(sources):
        yield src, label, encoded(upscaled(src, kind, seed * 1_000_003 + i), kind)


def write_large_set(
    dest: Path, kind: Kind, sources: list[tuple[Path, str]], *, seed: int = 0
) -> Path:
    """An archive of large images under `dest/kind.name/<label>/`, one per source."""
    root = dest / kind.name
    for src, label, data in large_images(kind, sources, seed=seed):
        out = root / label / f"{src.stem}.{kind.ext}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return root
