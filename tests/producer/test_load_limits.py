"""Which size limit applies to an image on its way to the broker depends on what travels."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from allscreen.settings import Settings
from producer.enqueue import _load


def _file(tmp_path: Path, size: int) -> tuple[bytes, str]:
    path = tmp_path / "field.tif"
    data = os.urandom(size)
    path.write_bytes(data)
    return os.fsencode(path), hashlib.sha256(data).hexdigest()


def test_a_file_over_the_message_limit_fails_when_its_bytes_would_travel(tmp_path: Path) -> None:
    location, sha = _file(tmp_path, 4096)
    settings = Settings(max_message_bytes=1024)
    item, error = _load(1, sha, location, 4096, settings)
    assert item is None
    assert error == "file is 4096 bytes, over the 1024-byte batch limit"


def test_a_file_over_the_message_limit_goes_by_path_when_only_its_path_travels(
    tmp_path: Path,
) -> None:
    location, sha = _file(tmp_path, 4096)
    settings = Settings(max_message_bytes=1024, transport="path")
    item, error = _load(1, sha, location, 4096, settings)
    assert error is None and item is not None
    assert item.path == os.fsdecode(location) and item.data is None


def test_a_file_over_the_image_limit_fails_whatever_travels(tmp_path: Path) -> None:
    location, sha = _file(tmp_path, 4096)
    for transport in ("bytes", "path"):
        settings = Settings(max_image_bytes=1024, transport=transport)
        item, error = _load(1, sha, location, 4096, settings)
        assert item is None and error == "file is 4096 bytes, over the 1024-byte limit"
