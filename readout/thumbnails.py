"""Small JPEG thumbnails embedded in a page as `data:` URIs, so the page stays one file.

A thumbnail is made from the image file where the archive lies (`Image.location`, resolved by
`allscreen.locations`); on a machine that cannot read it, or for a run that stores no location
(`--store-paths hashed`), there is no thumbnail, never an error: a report is still useful
without pictures.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import cv2
import numpy as np

from allscreen.locations import readable_location

THUMBNAIL_PX = 96  #: longer side of a thumbnail: enough to recognise a smear, small to embed
THUMBNAIL_QUALITY = 80  #: JPEG quality; about 3-5 kB per thumbnail
MAX_SOURCE_BYTES = 64 * 1024 * 1024  #: larger files are not read for a thumbnail
#: Files larger than this are decoded at a quarter of their size first (JPEG scales while it
#: decodes): a large scan then costs a fraction of a full decode, for the same thumbnail.
LARGE_SOURCE_BYTES = 512 * 1024


def _read(location: bytes) -> bytes | None:
    """The file's bytes, or None when it cannot be read here (or is too large to bother)."""
    try:
        with open(os.fsdecode(location), "rb") as fh:
            data = fh.read(MAX_SOURCE_BYTES + 1)
    except (OSError, ValueError):
        return None
    return data if 0 < len(data) <= MAX_SOURCE_BYTES else None


def thumbnail_jpeg(data: bytes, *, size: int = THUMBNAIL_PX) -> bytes | None:
    """`data` (an encoded image) as a JPEG whose longer side is at most `size` pixels."""
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        pixels = None
        if len(data) > LARGE_SOURCE_BYTES:
            pixels = cv2.imdecode(buf, cv2.IMREAD_REDUCED_COLOR_4)
            if pixels is not None and max(pixels.shape[:2]) < size:
                pixels = None  # too small at a quarter: decode it whole
        if pixels is None:
            pixels = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if pixels is None or pixels.size == 0:
        return None
    h, w = pixels.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        dim = (max(1, round(w * scale)), max(1, round(h * scale)))
        pixels = cv2.resize(pixels, dim, interpolation=cv2.INTER_AREA)
    ok, out = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY])
    return bytes(out) if ok else None


def thumbnail_uri(
    location: bytes, *, size: int = THUMBNAIL_PX, archive_root: Path | None = None
) -> str | None:
    """A `data:image/jpeg;base64,…` thumbnail of the file at `location` (a relative one under
    `archive_root`), or None if unreadable."""
    where = readable_location(location, archive_root)
    data = _read(where) if where is not None else None
    jpeg = thumbnail_jpeg(data, size=size) if data is not None else None
    if jpeg is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
