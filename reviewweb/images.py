"""Image bytes for the page, found only by database id: no path from a request reaches a file.

The file read is the one the run registered (`Image.location`, an absolute path stored as
bytes, or a relative one read under `ALLSCREEN_ARCHIVE_ROOT`; a run submitted with
`--store-paths hashed` stores none), and only after the image is checked to belong to the run
in the URL. Formats a browser
shows (JPEG, PNG, BMP, GIF, WebP) are sent as they are; TIFF is converted to PNG, within the
decoding limits the workers use.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from allscreen.locations import readable_location
from allscreen.schema import Image

#: Leading bytes of the formats browsers display, with their media types.
MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)


class ImageUnavailable(Exception):
    """Raised when an image's file cannot be read from this machine (with a sentence why)."""


@dataclass(frozen=True, slots=True)
class ImageFile:
    """An image's bytes, ready to send."""

    body: bytes
    media_type: str


def image_location(engine: Engine, run_id: int, image_id: int) -> tuple[str, bytes] | None:
    """(relative path, stored location) of an image of the run, or None if not the run's."""
    with engine.connect() as conn:
        row = conn.execute(
            select(Image.path, Image.location).where(Image.id == image_id, Image.run_id == run_id)
        ).first()
    return None if row is None else (row.path, bytes(row.location))


def media_type(head: bytes) -> str | None:
    """The media type of bytes a browser can show as they are, else None."""
    for magic, kind in MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _as_png(data: bytes, max_pixels: int) -> bytes:
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels:
                raise ImageUnavailable(f"it has {im.width} x {im.height} pixels, over the limit")
            out = io.BytesIO()
            im.convert("RGB").save(out, format="PNG")
    except (OSError, ValueError, PILImage.DecompressionBombError) as exc:
        raise ImageUnavailable(f"it cannot be decoded ({exc})") from exc
    return out.getvalue()


def read_image(
    location: bytes, *, max_bytes: int, max_pixels: int, archive_root: Path | None = None
) -> ImageFile:
    """The bytes at a registered location, refused with a sentence if unreadable or too big."""
    where = readable_location(location, archive_root)
    if where is None:
        raise ImageUnavailable(
            "its run keeps no path to it (--store-paths hashed)"
            if not location
            else "its run keeps relative paths and ALLSCREEN_ARCHIVE_ROOT is not set"
        )
    try:
        with open(where, "rb") as fh:  # a path from the database, never from the request
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageUnavailable("its file is not reachable from this machine") from None
    except OSError as exc:
        raise ImageUnavailable(f"its file cannot be read here ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise ImageUnavailable(f"its file is larger than {max_bytes} bytes")
    kind = media_type(data[:16])
    if kind is not None:
        return ImageFile(data, kind)
    return ImageFile(_as_png(data, max_pixels), "image/png")
