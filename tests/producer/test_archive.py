"""`scan()` over real folders: which files it picks, in what order, with what labels, and how it
copes with symlink loops and names that are not UTF-8."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from producer.archive import Found, LabelMode, display_name, label_from_filename, scan

IMAGE_NAMES = ("a.jpg", "b.JPEG", "c.Png", "d.bmp", "e.TIF", "f.tiff", "g.JpG")
OTHER_NAMES = ("notes.txt", "h.gif", "i.jpg.bak", "README", "j.webp", "k.jpgx", "Thumbs.db")


def touch(path: Path, content: bytes | None = None) -> Path:
    """Create `path` (and its folders) holding `content`, by default its own name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(path.name.encode() if content is None else content)
    return path


def run_scan(*roots: Path | bytes, labels: LabelMode = "none") -> list[Found]:
    """Every Found of a scan, as a list."""
    return list(scan([os.fsencode(r) for r in roots], labels))


def displays(found: list[Found]) -> list[str]:
    """The display names, in scan order."""
    return [f.display for f in found]


def test_scan_finds_every_image_suffix_in_any_case_and_ignores_other_files(
    tmp_path: Path,
) -> None:
    for name in IMAGE_NAMES + OTHER_NAMES:
        touch(tmp_path / name)
    (tmp_path / "folder.jpg").mkdir()  # a folder with an image suffix is not an image
    assert displays(run_scan(tmp_path)) == sorted(IMAGE_NAMES)


def test_scan_descends_into_nested_folders(tmp_path: Path) -> None:
    touch(tmp_path / "top.jpg")
    touch(tmp_path / "x" / "mid.png")
    touch(tmp_path / "x" / "y" / "z" / "deep.tif")
    touch(tmp_path / "x" / "y" / "skip.txt")
    assert sorted(displays(run_scan(tmp_path))) == ["top.jpg", "x/mid.png", "x/y/z/deep.tif"]


def test_scan_gives_absolute_raw_locations_that_open_the_files(tmp_path: Path) -> None:
    touch(tmp_path / "sub" / "one.jpg", b"first")
    (found,) = run_scan(tmp_path)
    assert isinstance(found.location, bytes)
    assert os.path.isabs(found.location)
    with open(found.location, "rb") as fh:
        assert fh.read() == b"first"


def test_scan_order_is_sorted_and_the_same_every_time(tmp_path: Path) -> None:
    # Created out of order so the directory's own order is unlikely to be the sorted one.
    for rel in ("b/2.jpg", "a/9.jpg", "z.jpg", "b/1.jpg", "a/10.jpg", "c/d/0.jpg", "m.jpg"):
        touch(tmp_path / rel)
    first = displays(run_scan(tmp_path))
    assert first == ["m.jpg", "z.jpg", "a/10.jpg", "a/9.jpg", "b/1.jpg", "b/2.jpg", "c/d/0.jpg"]
    assert displays(run_scan(tmp_path)) == first


def test_folder_labels_take_the_parent_folder_name(tmp_path: Path) -> None:
    touch(tmp_path / "Benign" / "x1.jpg")
    touch(tmp_path / "Pre" / "x2.jpg")
    touch(tmp_path / "batch-2" / "Early" / "x3.jpg")
    touch(tmp_path / "loose.jpg")
    labels = {f.display: f.ground_truth for f in run_scan(tmp_path, labels="folder")}
    assert labels == {
        "Benign/x1.jpg": "Benign",
        "Pre/x2.jpg": "Pre",
        "batch-2/Early/x3.jpg": "Early",
        "loose.jpg": None,
    }


def test_filename_labels_come_from_dataset_style_names(tmp_path: Path) -> None:
    names = {
        "WBC-Malignant-Pre-741.jpg": "Pre",
        "WBC-Malignant-Early-001.jpg": "Early",
        "WBC-Malignant-Pro-010.jpg": "Pro",
        "WBC-Benign-001.jpg": "Benign",
        "smear-001.jpg": None,
        "benignity.jpg": None,
        "WBC-Malignant-741.jpg": None,
    }
    for name in names:
        touch(tmp_path / "Pro" / name)  # the folder must not leak into filename labels
    labels = {f.display: f.ground_truth for f in run_scan(tmp_path, labels="filename")}
    assert labels == {f"Pro/{name}": label for name, label in names.items()}


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("WBC-Malignant-Pre-741.jpg", "Pre"),
        ("WBC-Malignant-Early-001.jpg", "Early"),
        ("WBC-Benign-001.jpg", "Benign"),
        ("wbc_malignant_pro_3.png", "Pro"),
        ("IMG_0001.jpg", None),
        ("Malignant.jpg", None),
        ("", None),
    ],
)
def test_label_from_filename_maps_dataset_names_and_nothing_else(
    name: str, label: str | None
) -> None:
    assert label_from_filename(name) == label


def test_no_labels_mode_gives_no_ground_truth(tmp_path: Path) -> None:
    touch(tmp_path / "Benign" / "WBC-Benign-001.jpg")
    assert [f.ground_truth for f in run_scan(tmp_path, labels="none")] == [None]


def test_a_symlink_loop_ends_and_yields_each_file_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "archive"
    touch(root / "top.jpg")
    touch(root / "dir" / "inner.jpg")
    (root / "dir" / "loop").symlink_to("..", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="producer.archive"):
        found = run_scan(root)
    assert displays(found) == ["top.jpg", "dir/inner.jpg"]
    assert len({os.path.realpath(f.location) for f in found}) == len(found)
    assert any("symlink loop" in r.getMessage() for r in caplog.records)


def test_a_symlink_to_its_own_folder_ends(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "one.jpg")
    (tmp_path / "a" / "self").symlink_to(".", target_is_directory=True)
    assert displays(run_scan(tmp_path)) == ["a/one.jpg"]


def test_a_symlinked_folder_outside_the_archive_is_followed(tmp_path: Path) -> None:
    touch(tmp_path / "elsewhere" / "linked.jpg")
    touch(tmp_path / "archive" / "own.jpg")
    (tmp_path / "archive" / "more").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert displays(run_scan(tmp_path / "archive")) == ["own.jpg", "more/linked.jpg"]


def test_a_name_that_is_not_utf8_is_yielded_readably_and_still_opens(tmp_path: Path) -> None:
    raw_dir = os.path.join(os.fsencode(tmp_path), b"Pre")
    os.mkdir(raw_dir)
    raw = os.path.join(raw_dir, b"bad\xff.jpg")
    with open(raw, "wb") as fh:
        fh.write(b"bytes of a smear")
    (found,) = run_scan(tmp_path, labels="folder")
    assert "\\xff" in found.display
    assert found.display == "Pre/bad\\xff.jpg"
    found.display.encode("utf-8")  # storable as text
    assert found.ground_truth == "Pre"
    assert found.location == raw
    with open(found.location, "rb") as fh:
        assert fh.read() == b"bytes of a smear"


def test_display_name_escapes_only_the_invalid_bytes() -> None:
    assert display_name("Früh/ok.jpg".encode()) == "Früh/ok.jpg"
    assert display_name(b"a\xff\xfeb.png") == "a\\xff\\xfeb.png"


def test_several_roots_prefix_each_name_with_its_roots_folder_name(tmp_path: Path) -> None:
    touch(tmp_path / "clinic-a" / "Benign" / "x.jpg")
    touch(tmp_path / "clinic-b" / "Benign" / "x.jpg")
    touch(tmp_path / "clinic-b" / "y.png")
    found = run_scan(tmp_path / "clinic-a", str(tmp_path / "clinic-b").encode() + b"/")
    assert displays(found) == ["clinic-a/Benign/x.jpg", "clinic-b/y.png", "clinic-b/Benign/x.jpg"]
    assert len({f.location for f in found}) == 3


def test_several_roots_keep_folder_labels_from_the_parent_folder(tmp_path: Path) -> None:
    touch(tmp_path / "clinic-a" / "Benign" / "x.jpg")
    touch(tmp_path / "clinic-b" / "Pro" / "y.jpg")
    found = run_scan(tmp_path / "clinic-a", tmp_path / "clinic-b", labels="folder")
    assert [f.ground_truth for f in found] == ["Benign", "Pro"]


def test_a_single_root_has_no_prefix(tmp_path: Path) -> None:
    touch(tmp_path / "clinic-a" / "x.jpg")
    assert displays(run_scan(tmp_path / "clinic-a")) == ["x.jpg"]


def test_a_root_that_is_a_file_is_yielded_by_its_name(tmp_path: Path) -> None:
    path = touch(tmp_path / "Early" / "WBC-Malignant-Early-001.jpg")
    (found,) = run_scan(path, labels="filename")
    assert found.display == "WBC-Malignant-Early-001.jpg"
    assert found.ground_truth == "Early"
    assert found.location == os.fsencode(path)


def test_an_empty_archive_yields_nothing(tmp_path: Path) -> None:
    touch(tmp_path / "notes.txt")
    assert run_scan(tmp_path) == []
