"""Shipping images already reduced, for devices on slow links (`ALLSCREEN_SHIP_SIDE`).

In the `bytes` transport every image's bytes cross the network to Redis and again to a
device. A 5-megapixel field is about a megabyte as JPEG (ten as TIFF) while the model reads
96x96 pixels, so the producer can send a reduced copy the model's input cannot tell apart: a
JPEG is decoded at the largest DCT scale (1/2, 1/4, 1/8) that keeps `side` pixels on its
shorter side (`allscreen.reduced`, the cut the worker itself makes), another format is
averaged down by the same factor (INTER_AREA), and the result is re-encoded as a high-quality
JPEG. An image less than twice `side` is shipped as it is. Section 9 of BENCHMARKS.md measures
what it changes in the features and predictions, and what it saves.

The image keeps its registered sha256 (of the file in the archive); only the bytes in flight
differ. Anything that cannot be reduced (too small already, undecodable, over the pixel limit)
is shipped as it is, and the worker decides about it as for any other file.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from allscreen import defaults
from allscreen.reduced import SCALABLE_FORMATS, imdecode_scaled, reduction

Pixels = npt.NDArray[np.uint8]

_pool: ThreadPoolExecutor | None = None


def shrink_for_wire(
    data: bytes, *, side: int, max_pixels: int, quality: int = defaults.SHIP_JPEG_QUALITY
) -> bytes:
    """`data` reduced to keep at least `side` pixels on its shorter side, as JPEG; or `data`
    itself when reducing it would not help or is not possible."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as header:
                fmt, size = header.format or "?", header.size
    except (OSError, ValueError, SyntaxError):
        return data
    scale = reduction(size, (side, side))
    if scale == 1 or size[0] * size[1] > max_pixels:
        return data
    if fmt in SCALABLE_FORMATS:
        img = imdecode_scaled(data, scale)
    else:  # the size a JPEG's DCT scaling gives, each pixel the mean of a scale x scale block
        img = imdecode_scaled(data, 1)
        if img is not None:
            h, w = img.shape[:2]
            new = (-(-w // scale), -(-h // scale))
            img = cast(Pixels, cv2.resize(img, new, interpolation=cv2.INTER_AREA))
    if img is None:
        return data
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok or len(buf) >= len(data):
        return data
    return bytes(buf.tobytes())


def shrink_all(datas: Sequence[bytes], *, side: int, max_pixels: int) -> list[bytes]:
    """`shrink_for_wire` of each file, in order, on every core of the producer's machine
    (OpenCV decodes and encodes without holding the GIL)."""
    global _pool
    if len(datas) < 2:
        return [shrink_for_wire(d, side=side, max_pixels=max_pixels) for d in datas]
    if _pool is None:
        _pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="allscreen-shrink")
    return list(_pool.map(partial(shrink_for_wire, side=side, max_pixels=max_pixels), datas))
