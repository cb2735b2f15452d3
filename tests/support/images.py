"""Test images: copies of the shared ALL set where it exists, synthetic ones elsewhere."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from allscreen.defaults import REPO_ROOT
from allscreen.demo import make_synthetic_images

DATA = REPO_ROOT.parent / "shared" / "data" / "all"  #: the shared data set (never committed)
LABELS = ("Benign", "Early", "Pre", "Pro")


def split_rows(split: str) -> list[tuple[Path, str]]:
    """(path, label) of every image in a split of the shared set."""
    with (DATA / "split.csv").open(newline="") as fh:
        return [(DATA / r["file"], r["label"]) for r in csv.DictReader(fh) if r["split"] == split]


def archive_of(folder: Path, *, per_class: int) -> Path:
    """Build an archive with `per_class` distinct images in each label folder."""
    if (DATA / "split.csv").exists():
        taken: dict[str, int] = {}
        seen: set[str] = set()
        with (DATA / "split.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                label = row["label"]
                if row["split"] != "test" or taken.get(label, 0) >= per_class:
                    continue
                if row["sha256"] in seen:
                    continue
                seen.add(row["sha256"])
                (folder / label).mkdir(parents=True, exist_ok=True)
                shutil.copy(DATA / row["file"], folder / label / Path(row["file"]).name)
                taken[label] = taken.get(label, 0) + 1
        return folder
    for i, label in enumerate(LABELS):
        make_synthetic_images(folder / label, per_class, seed=i)
    return folder
