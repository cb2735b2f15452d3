"""Decoding image bytes into RGB pixels, with explicit limits on bytes and pixels."""

from __future__ import annotations

import io
import warnings
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from allscreen.errors import ImageRejected
from allscreen.reduced import SCALABLE_FORMATS, imdecode_scaled, reduction

#: Formats the archive scanner accepts; anything else is refused before decoding.
ALLOWED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "BMP", "TIFF"})

# Pillow only reads headers here; the limit is enforced below with our own message.
Image.MAX_IMAGE_PIXELS = None

RGBImage = npt.NDArray[np.uint8]
BGRImage = npt.NDArray[np.uint8]


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> RGBImage:
    """Decode `data` to an RGB uint8 array (H, W, 3), or raise ImageRejected with the reason.

    See `decode_bgr`; this adds the conversion to RGB.
    """
    bgr = decode_bgr(data, max_bytes=max_bytes, max_pixels=max_pixels)
    return cast(RGBImage, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def truncated_jpeg(data: bytes) -> bool:
    """Whether JPEG `data` lacks an end-of-image marker after its last start-of-scan.

    libjpeg fills a truncated scan with grey and succeeds, so this is checked first. The marker
    must follow the last scan, not end the file: cameras may append bytes after it, and
    entropy-coded data never holds FFDA or FFD9. Searching back from the end for the last FFD9,
    then forward for a scan after it, reads only the file's tail (searching for the last scan
    first read the whole file twice).
    """
    eoi = data.rfind(b"\xff\xd9")
    return eoi < 0 or data.find(b"\xff\xda", eoi) >= 0


def decode_bgr(
    data: bytes, *, max_bytes: int, max_pixels: int, at_least: tuple[int, int] | None = None
) -> BGRImage:
    """Decode `data` to a BGR uint8 array (H, W, 3), OpenCV's own order, or raise
    ImageRejected with the reason.

    The header is read first (Pillow reads it without decoding pixels), so a file that declares
    a huge size is refused before any memory is spent on it. Grey, RGBA, 16-bit and CMYK images
    are converted to 8-bit colour by OpenCV. With `at_least` (width, height), a JPEG is decoded
    at the largest DCT reduction (1/2, 1/4, 1/8) that keeps that many pixels on each side
    (`allscreen.reduced`); other formats, and JPEGs too small to reduce, are decoded in full.
    """
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImageRejected(f"file is {len(data)} bytes, over the {max_bytes}-byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as header:
                fmt, (width, height) = header.format or "?", header.size
    except UnidentifiedImageError as exc:
        # Pillow's message names the BytesIO object (a memory address): say what it means.
        raise ImageRejected("not a readable image: format not recognised") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageRejected(f"not a readable image: {exc}") from exc
    if fmt not in ALLOWED_FORMATS:
        raise ImageRejected(f"unsupported image format {fmt}")
    if width * height > max_pixels:
        raise ImageRejected(
            f"image declares {width}x{height} pixels, over the {max_pixels}-pixel limit"
        )
    if fmt in {"JPEG", "MPO"} and truncated_jpeg(data):
        raise ImageRejected("truncated JPEG (no end-of-image marker)")
    scale = 1
    if at_least is not None and fmt in SCALABLE_FORMATS:
        scale = reduction((width, height), at_least)
    bgr = imdecode_scaled(data, scale)
    if bgr is None:
        raise ImageRejected(f"{fmt} data is corrupt and could not be decoded")
    return bgr
