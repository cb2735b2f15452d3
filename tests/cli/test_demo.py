"""`allscreen demo`: the main job on embedded defaults, with no server configured."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cli import demo
from tests.support.cli import allscreen


def test_demo_screens_a_folder_with_an_embedded_redis_and_sqlite(
    archive: Path, tmp_path: Path
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    r = allscreen("demo", str(archive), "--workers", "2", cwd=work, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    assert "started an embedded Redis" in r.stderr
    assert "failed 0" in r.stdout and "pending 0" in r.stdout
    assert (work / "allscreen.db").exists()
    with (work / "allscreen-demo.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(row["status"] == "done" for row in rows)
    again = allscreen("demo", str(archive), "--workers", "1", cwd=work, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "enqueued 0 images" in again.stderr


def test_with_no_archive_the_demo_makes_synthetic_images_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo, "SHARED_ARCHIVE", tmp_path / "absent")
    monkeypatch.chdir(tmp_path)
    folder, labels = demo._pick_archive(None)
    assert labels == "none"
    assert len(list(folder.glob("*.jpg"))) == 12
    assert "SYNTHETIC" in capsys.readouterr().err
