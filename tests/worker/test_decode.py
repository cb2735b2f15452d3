"""`decode_image` on a bad-input corpus made at test time: each file is refused with a specific
reason, or decodes to (H, W, 3) uint8 RGB. No image is committed; every one is built here."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from allscreen.defaults import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from allscreen.errors import ImageRejected
from worker.decode import decode_image

Pixels = npt.NDArray[np.uint8]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_RGB, PNG_GREY = 2, 0  #: PNG colour types
BOMB_SIDE = 100_000  #: a PNG header declaring 100000x100000 pixels: 30 GB of RGB when decoded


def decode(data: bytes) -> Pixels:
    """Decode with the worker's default limits."""
    return decode_image(
        data, max_bytes=DEFAULT_MAX_IMAGE_BYTES, max_pixels=DEFAULT_MAX_IMAGE_PIXELS
    )


def write(tmp_path: Path, name: str, data: bytes) -> bytes:
    """Put `data` in a file the way it would sit in an archive, and read it back."""
    path = tmp_path / name
    path.write_bytes(data)
    return path.read_bytes()


def encoded(img: Image.Image, fmt: str, **options: object) -> bytes:
    """`img` saved by Pillow in `fmt`."""
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body, CRC."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(width: int, height: int, *, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG built by hand, so the header can say anything (a size, a bit depth)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def random_rgb(rows: int, cols: int, seed: int = 0) -> Image.Image:
    """A deterministic noisy RGB picture (noise keeps JPEG scans long)."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (rows, cols, 3), np.uint8))


def assert_rgb(img: Pixels, rows: int, cols: int) -> None:
    """`img` is an (rows, cols, 3) uint8 array."""
    assert img.dtype == np.uint8
    assert img.shape == (rows, cols, 3)


def rejection(data: bytes, **limits: int) -> str:
    """The reason `decode_image` gives for refusing `data` (fails if it is not refused)."""
    kwargs = {"max_bytes": DEFAULT_MAX_IMAGE_BYTES, "max_pixels": DEFAULT_MAX_IMAGE_PIXELS}
    kwargs.update(limits)
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, **kwargs)
    reason = str(caught.value)
    assert "object at" not in reason and "BytesIO" not in reason, "the reason leaks a repr"
    return reason


# --- refused, each with its own reason ---------------------------------------------------------


def test_a_zero_byte_file_is_rejected_as_empty(tmp_path: Path) -> None:
    assert "empty" in rejection(write(tmp_path, "empty.jpg", b""))


def test_a_truncated_jpeg_is_rejected_as_truncated(tmp_path: Path) -> None:
    whole = encoded(random_rgb(120, 160), "JPEG", quality=90)
    assert "truncated" in rejection(write(tmp_path, "half.jpg", whole[: len(whole) // 2]))


def test_a_truncated_progressive_jpeg_is_rejected_as_truncated(tmp_path: Path) -> None:
    whole = encoded(random_rgb(120, 160), "JPEG", quality=90, progressive=True)
    assert whole.count(b"\xff\xda") > 1, "expected several scans"
    cut = whole[: len(whole) * 2 // 3]
    assert "truncated" in rejection(write(tmp_path, "cut.jpg", cut))


def test_a_truncated_jpeg_is_rejected_even_when_an_embedded_thumbnail_is_complete(
    tmp_path: Path,
) -> None:
    # An EXIF-style APP1 segment holding a whole small JPEG (with its own scan and end marker).
    thumb = encoded(random_rgb(8, 8, seed=1), "JPEG")
    app1 = b"Exif\0\0" + thumb
    main = encoded(random_rgb(120, 160), "JPEG", quality=90)
    whole = main[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + main[2:]
    assert_rgb(decode(whole), 120, 160)
    assert "truncated" in rejection(write(tmp_path, "thumb.jpg", whole[: len(whole) * 3 // 4]))


def test_a_text_file_named_jpg_is_rejected_as_not_a_readable_image(tmp_path: Path) -> None:
    data = write(tmp_path, "notes.jpg", b"patient notes, not a picture\n" * 20)
    assert "not a readable image" in rejection(data)


def test_a_png_declaring_a_huge_size_is_rejected_before_decoding(tmp_path: Path) -> None:
    bomb = png_bytes(
        BOMB_SIDE, BOMB_SIDE, bit_depth=8, colour_type=PNG_RGB, rows=b"\0" * (3 * 16 + 1)
    )
    assert len(bomb) < 200, "the bomb itself must be tiny"
    reason = rejection(write(tmp_path, "bomb.png", bomb))
    assert "pixel limit" in reason and "over the" in reason
    assert f"{BOMB_SIDE}x{BOMB_SIDE}" in reason


def test_the_pixel_limit_counts_width_times_height() -> None:
    data = encoded(Image.new("RGB", (40, 25), (1, 2, 3)), "PNG")
    assert_rgb(decode_image(data, max_bytes=len(data), max_pixels=1000), 25, 40)
    assert "pixel limit" in rejection(data, max_pixels=999)


def test_a_gif_is_rejected_as_unsupported(tmp_path: Path) -> None:
    gif = write(tmp_path, "smear.gif", encoded(Image.new("RGB", (20, 10), (255, 0, 0)), "GIF"))
    reason = rejection(gif)
    assert "unsupported" in reason and "GIF" in reason


def test_a_file_over_max_bytes_is_rejected_with_its_size_and_the_limit(tmp_path: Path) -> None:
    data = write(tmp_path, "big.png", encoded(random_rgb(64, 64), "PNG"))
    limit = len(data) - 1
    reason = rejection(data, max_bytes=limit)
    assert f"{len(data)} bytes" in reason and f"over the {limit}-byte limit" in reason


def test_a_file_of_exactly_max_bytes_is_accepted() -> None:
    data = encoded(random_rgb(64, 64), "PNG")
    assert_rgb(decode_image(data, max_bytes=len(data), max_pixels=64 * 64), 64, 64)


def test_a_png_with_corrupt_pixel_data_is_rejected_as_corrupt(tmp_path: Path) -> None:
    whole = encoded(random_rgb(64, 64), "PNG")
    reason = rejection(write(tmp_path, "cut.png", whole[: len(whole) // 2]))
    assert "corrupt" in reason and "PNG" in reason


# --- decoded to 8-bit RGB -----------------------------------------------------------------------


def test_an_8_bit_rgb_png_decodes_in_rgb_channel_order(tmp_path: Path) -> None:
    data = write(tmp_path, "red.png", encoded(Image.new("RGB", (20, 10), (255, 0, 0)), "PNG"))
    img = decode(data)
    assert_rgb(img, 10, 20)
    assert (img == np.array([255, 0, 0], np.uint8)).all()


def test_distinct_channels_keep_their_places() -> None:
    img = decode(encoded(Image.new("RGB", (7, 5), (10, 120, 230)), "PNG"))
    assert img[0, 0].tolist() == [10, 120, 230]


def test_a_16_bit_png_decodes_to_8_bit_rgb_keeping_the_high_byte(tmp_path: Path) -> None:
    pixel = struct.pack(">HHH", 0xFF00, 0x80FF, 0x0110)
    rows = (b"\0" + pixel * 5) * 4
    data = png_bytes(5, 4, bit_depth=16, colour_type=PNG_RGB, rows=rows)
    img = decode(write(tmp_path, "deep.png", data))
    assert_rgb(img, 4, 5)
    assert (img == np.array([0xFF, 0x80, 0x01], np.uint8)).all()


def test_a_16_bit_grey_png_decodes_to_three_equal_channels() -> None:
    rows = (b"\0" + struct.pack(">H", 0x9C40) * 6) * 3
    img = decode(png_bytes(6, 3, bit_depth=16, colour_type=PNG_GREY, rows=rows))
    assert_rgb(img, 3, 6)
    assert (img == 0x9C).all()


def test_an_rgba_png_decodes_to_rgb_dropping_alpha(tmp_path: Path) -> None:
    data = encoded(Image.new("RGBA", (20, 10), (255, 0, 0, 128)), "PNG")
    img = decode(write(tmp_path, "alpha.png", data))
    assert_rgb(img, 10, 20)
    assert (img == np.array([255, 0, 0], np.uint8)).all()


def test_a_grayscale_jpeg_decodes_to_three_equal_channels(tmp_path: Path) -> None:
    data = encoded(Image.new("L", (20, 10), 77), "JPEG")
    img = decode(write(tmp_path, "grey.jpg", data))
    assert_rgb(img, 10, 20)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert abs(int(img[5, 10, 0]) - 77) <= 2


def test_a_cmyk_jpeg_decodes_to_rgb(tmp_path: Path) -> None:
    data = encoded(Image.new("CMYK", (20, 10), (0, 255, 255, 0)), "JPEG")
    img = decode(write(tmp_path, "cmyk.jpg", data))
    assert_rgb(img, 10, 20)
    red, green, blue = (int(v) for v in img[5, 10])
    assert red >= 250 and green <= 5 and blue <= 5, f"pure red came out as {img[5, 10]}"


def test_a_jpeg_with_bytes_after_its_end_marker_still_decodes(tmp_path: Path) -> None:
    whole = encoded(random_rgb(48, 64), "JPEG", quality=95)
    expected = decode(whole)
    for trailer in (b"\0" * 64, b"SEFT camera trailer", b"\xff\xd8\xff"):
        img = decode(write(tmp_path, "trailer.jpg", whole + trailer))
        assert np.array_equal(img, expected)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PNG", "JPEG"])
def test_each_accepted_format_decodes_like_opencv_reading_the_file(
    tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"smear.{fmt.lower()}"
    path.write_bytes(encoded(random_rgb(30, 50, seed=7), fmt))
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None
    img = decode(path.read_bytes())
    assert_rgb(img, 30, 50)
    assert np.array_equal(img, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
