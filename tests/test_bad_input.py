"""A bad-input corpus, generated at test time, screened through the real pipeline.

Each bad file becomes a recorded failure with a clear reason, or is handled correctly; the rest
of the run goes on.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from sqlalchemy import Engine

from allscreen.settings import Settings
from producer.submit import submit, watch
from tests.support.runs import outcomes
from tests.support.workers import workers


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb() -> bytes:
    """A tiny PNG whose header declares 100000 x 100000 pixels."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def make_corpus(folder: Path, good: Path) -> None:
    """Write the corpus next to real images; `good` is one valid JPEG to derive files from."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = good.read_bytes()
    rgb = np.random.default_rng(1).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "notes.jpg").write_text("this is a text file, not an image\n")
    (folder / "bomb.png").write_bytes(_bomb())
    cv2.imwrite(str(folder / "deep16.png"), (rgb.astype(np.uint16) * 257))
    cv2.imwrite(str(folder / "alpha.png"), np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]))
    cv2.imwrite(str(folder / "grey.jpg"), rgb[..., 0])
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", "JPEG")
    os.symlink(folder / "does-not-exist.jpg", folder / "dangling.jpg")
    (folder / "loop").mkdir()
    os.symlink("..", folder / "loop" / "back")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.jpg"), "wb") as fh:
        fh.write(jpeg + b"latin-1 name")
    (folder / "twin-a.jpg").write_bytes(jpeg + b"twin")
    (folder / "twin-b.jpg").write_bytes(jpeg + b"twin")


def test_every_bad_file_is_a_recorded_failure_or_handled_and_the_run_goes_on(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    good = next(archive.rglob("*.jpg"))
    make_corpus(archive / "bad", good)
    n_good = len({p.read_bytes() for p in archive.rglob("*.jpg") if p.parent.name != "bad"})
    with workers(settings, tmp_path, "dev"):
        submit([archive], settings, run_name="bad", err=io.StringIO())
        watch("bad", settings, err=io.StringIO())
    got = outcomes(settings)

    def failed(name: str, *words: str) -> None:
        status, error = got[f"bad/{name}"]
        assert status == "failed", name
        assert error is not None and all(w in error for w in words), (name, error)

    failed("zero.jpg", "empty")
    failed("truncated.jpg", "truncated")
    failed("notes.jpg", "not a readable image")
    failed("bomb.png", "100000x100000", "pixel limit")
    failed("dangling.jpg", "cannot read file")
    for name in ("deep16.png", "alpha.png", "grey.jpg", "cmyk.jpg", "caf\\xe9.jpg"):
        assert got[f"bad/{name}"][0] == "done", name
    twins = [p for p in got if p.startswith("bad/twin-")]
    assert twins == ["bad/twin-a.jpg"]  # the same content under two names: classified once
    assert not any("loop" in p for p in got)  # the symlink loop was walked once, not forever
    good_rows = [s for p, (s, _) in got.items() if not p.startswith("bad/")]
    assert len(good_rows) == n_good and set(good_rows) == {"done"}
