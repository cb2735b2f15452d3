"""The reduced copies the producer ships: smaller, still large enough, or the file untouched."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from allscreen.defaults import DEFAULT_MAX_IMAGE_PIXELS
from producer.shrink import shrink_all, shrink_for_wire

SIDE = 192


def field(width: int, height: int, fmt: str) -> bytes:
    """A smooth colour pattern with noise, as a file in `fmt`."""
    rng = np.random.default_rng(width + height)
    small = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    big += (rng.standard_normal(big.shape, dtype=np.float32) * np.float32(4)).astype(np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(buf, fmt, quality=92)
    return buf.getvalue()


def size_of(data: bytes) -> tuple[str, tuple[int, int]]:
    """(format, (width, height)) from a file's header."""
    with Image.open(io.BytesIO(data)) as img:
        return img.format or "?", img.size


def test_a_large_jpeg_ships_at_the_dct_scale_that_keeps_the_side() -> None:
    data = field(2592, 1944, "JPEG")
    out = shrink_for_wire(data, side=SIDE, max_pixels=DEFAULT_MAX_IMAGE_PIXELS)
    assert size_of(out) == ("JPEG", (324, 243))
    assert len(out) * 10 < len(data)


def test_a_large_tiff_ships_as_a_jpeg_averaged_down_by_the_same_factor() -> None:
    data = field(1600, 1200, "TIFF")
    out = shrink_for_wire(data, side=SIDE, max_pixels=DEFAULT_MAX_IMAGE_PIXELS)
    assert size_of(out) == ("JPEG", (400, 300))  # 1/4: 1/8 would leave 150 rows
    assert len(out) * 10 < len(data)


def test_small_broken_and_oversized_files_ship_as_they_are() -> None:
    small = field(300, 300, "JPEG")  # less than twice the side: nothing to gain
    assert shrink_for_wire(small, side=SIDE, max_pixels=DEFAULT_MAX_IMAGE_PIXELS) is small
    broken = b"\xff\xd8\xff\xe0 not really a jpeg"
    assert shrink_for_wire(broken, side=SIDE, max_pixels=DEFAULT_MAX_IMAGE_PIXELS) is broken
    large = field(1600, 1200, "JPEG")  # the worker refuses it with its own message
    assert shrink_for_wire(large, side=SIDE, max_pixels=1_000_000) is large


def test_a_batch_is_shrunk_on_several_threads_and_keeps_its_order() -> None:
    files = [field(800 + 16 * i, 600, "JPEG") for i in range(6)] + [b"not an image"]
    one_by_one = [shrink_for_wire(d, side=SIDE, max_pixels=DEFAULT_MAX_IMAGE_PIXELS) for d in files]
    assert shrink_all(files, side=SIDE, max_pixels=DEFAULT_MAX_IMAGE_PIXELS) == one_by_one
    assert [size_of(d)[1] for d in one_by_one[:6]] == [(400 + 8 * i, 300) for i in range(6)]
