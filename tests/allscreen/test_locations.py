"""Reading a stored location on the read side: absolute as it is, relative only under a named
archive root (never the working directory), and nothing for a hashed run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from allscreen.demo import make_synthetic_images
from allscreen.locations import readable_location
from readout.thumbnails import thumbnail_uri
from reviewweb.images import ImageUnavailable, read_image


def _read(location: bytes, root: Path | None = None) -> bytes:
    return read_image(location, max_bytes=1 << 20, max_pixels=1 << 24, archive_root=root).body


def test_a_relative_location_is_read_only_under_the_archive_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_synthetic_images(tmp_path / "Doe_John_1970", 1)
    (image,) = (tmp_path / "Doe_John_1970").iterdir()
    rel = os.fsencode(image.relative_to(tmp_path))
    monkeypatch.chdir(tmp_path)  # where a bare open() would have found it
    assert readable_location(bytes(image), None) == bytes(image)
    assert readable_location(rel, None) is None
    assert readable_location(rel, tmp_path) == bytes(image)
    assert thumbnail_uri(rel) is None
    assert (thumbnail_uri(rel, archive_root=tmp_path) or "").startswith("data:image/jpeg")
    assert _read(rel, tmp_path) == image.read_bytes()
    with pytest.raises(ImageUnavailable, match="relative paths and ALLSCREEN_ARCHIVE_ROOT"):
        _read(rel)


def test_a_hashed_run_stores_no_location_so_nothing_is_read(tmp_path: Path) -> None:
    assert readable_location(b"", tmp_path) is None
    assert thumbnail_uri(b"", archive_root=tmp_path) is None
    with pytest.raises(ImageUnavailable, match=r"keeps no path to it \(--store-paths hashed\)"):
        _read(b"", tmp_path)
