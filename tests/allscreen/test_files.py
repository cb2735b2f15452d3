"""Reading an image file with a size cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from allscreen.files import read_capped


def test_a_file_under_the_cap_is_read_whole(tmp_path: Path) -> None:
    f = tmp_path / "a.jpg"
    f.write_bytes(b"x" * 5000)
    assert read_capped(str(f), 1 << 25) == b"x" * 5000
    assert read_capped(bytes(f), 5000) == b"x" * 5000


def test_a_file_over_the_cap_yields_one_byte_more_than_the_cap(tmp_path: Path) -> None:
    f = tmp_path / "big.jpg"
    f.write_bytes(b"y" * 5000)
    assert read_capped(str(f), 100) == b"y" * 101  # the caller sees it is too large


def test_an_empty_file_reads_as_empty_and_a_missing_one_raises(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert read_capped(str(tmp_path / "empty.jpg"), 10) == b""
    with pytest.raises(OSError):
        read_capped(str(tmp_path / "missing.jpg"), 10)
