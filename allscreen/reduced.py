"""Decoding a JPEG at reduced scale when the model needs far fewer pixels than the file holds.

libjpeg can decode at 1/2, 1/4 or 1/8 of a JPEG's size by dropping DCT coefficients (OpenCV's
`IMREAD_REDUCED_COLOR_*`), at a fraction of a full decode's cost, and the smaller image then
costs less to resize. The scale is picked so the reduced image keeps at least `margin` times
the model's input on each side: the model's own resize (INTER_AREA) still averages several
decoded pixels into each input pixel, and the features barely move (BENCHMARKS.md, section 9).

Only JPEG is decoded this way: for other formats OpenCV decodes in full and then shrinks with
a linear filter that skips pixels, which would change the features for nothing.

Both sides use it: the worker to decode (`worker.decode`), the producer to ship images already
reduced (`producer.shrink`).
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

#: libjpeg's DCT scales that OpenCV exposes, largest first.
REDUCED_FLAGS = {
    8: cv2.IMREAD_REDUCED_COLOR_8,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    2: cv2.IMREAD_REDUCED_COLOR_2,
}
#: Image formats (Pillow's names) whose decoder scales in the DCT.
SCALABLE_FORMATS = frozenset({"JPEG", "MPO"})


def reduction(size: tuple[int, int], at_least: tuple[int, int]) -> int:
    """The largest of 8, 4, 2 that keeps a (width, height) image at least `at_least` on each
    side once reduced, else 1 (decode in full).

    Sides are compared shortest to longest need, so an EXIF rotation (which OpenCV applies
    after decoding) cannot break the promise; libjpeg rounds a reduced side up, this counts it
    rounded down."""
    short, need = min(size), max(at_least)
    for scale in REDUCED_FLAGS:
        if short // scale >= need:
            return scale
    return 1


def model_floor(width: int, height: int, margin: float) -> tuple[int, int]:
    """The smallest image, in pixels, a model with a `width`x`height` input should see:
    `margin` times its input on each side (rounded up)."""
    return (int(np.ceil(width * margin)), int(np.ceil(height * margin)))


def imdecode_scaled(data: bytes, scale: int) -> npt.NDArray[np.uint8] | None:
    """`data` decoded to BGR at 1/`scale` of its size (1 = full), or None if OpenCV cannot."""
    flag = cv2.IMREAD_COLOR if scale == 1 else REDUCED_FLAGS[scale]
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    return None if img is None else cast(npt.NDArray[np.uint8], img)
