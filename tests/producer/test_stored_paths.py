"""`submit --store-paths relative|hashed`: runs complete, resume after an interruption, and a
hashed run leaves no name of the archive in SQL, the exports or the report (real Redis, SQL,
workers and the `allscreen` command)."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, LargeBinary, select

from allscreen.db import make_engine
from allscreen.demo import make_synthetic_images
from allscreen.schema import Base, Case, Image, Run
from allscreen.settings import Settings
from producer.cases import CaseNamer
from producer.path_key import load_key
from producer.stored_paths import store_for_submit
from producer.submit import submit
from tests.support.cli import allscreen
from tests.support.runs import outcomes, result_count, wait_until
from tests.support.workers import workers

PATIENTS = ("Doe_John_1970", "Roe_Jane_1982", "Smith_Anna_1955")  #: folders named as archives are
PER_PATIENT = 4


def _archive(tmp_path: Path) -> Path:
    """ROOT/<patient>/slide_A/<patient>_smear_N.jpg: every folder and file name is a name."""
    root = tmp_path / "Archive_St_Mary"
    for seed, patient in enumerate(PATIENTS):
        raw = make_synthetic_images(tmp_path / "raw" / patient, PER_PATIENT, seed=seed)
        slide = root / patient / "slide_A"
        slide.mkdir(parents=True)
        for i, f in enumerate(sorted(raw.iterdir())):
            shutil.move(f, slide / f"{patient}_smear_{i}.jpg")
    return root


def _names(root: Path) -> set[str]:
    """Every folder and file name of the archive (and its stems), and the root itself."""
    names = {str(root), root.name}
    for p in root.rglob("*"):
        names.update({p.name, p.stem})
    return names


def _sql_text(url: str) -> list[str]:
    """Every value of every column of every table, as text (raw bytes decoded)."""
    engine = make_engine(url)
    out: list[str] = []
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    for col, value in zip(table.columns, row, strict=True):
                        if isinstance(col.type, LargeBinary) and value is not None:
                            out.append(bytes(value).decode("latin-1"))
                        elif value is not None:
                            out.append(str(value))
    finally:
        engine.dispose()
    return out


def _interrupt_then_resume(
    settings: Settings, tmp_path: Path, run: str, *resume_args: str
) -> tuple[str, int]:
    """The broker loses all but the first of the run's batches (a Redis restart); a device
    finishes that one, then `resume` sends the rest again."""
    assert settings.broker_url is not None
    client = redis.Redis.from_url(settings.broker_url)
    kept = client.llen(settings.queue)
    assert kept > 1
    client.ltrim(settings.queue, -1, -1)  # the batch sent first, which a worker takes first
    client.close()
    with workers(settings, tmp_path, "dev"):
        wait_until(lambda: result_count(settings) == PER_PATIENT, 60, "the kept batch's results")
        before = result_count(settings)
        res = allscreen("resume", run, *resume_args, "--wait", settings=settings)
    assert res.returncode == 0, res.stderr
    return res.stderr, before


@pytest.mark.parametrize("mode", ["relative", "hashed"])
def test_a_run_in_each_path_mode_completes_after_an_interruption_without_duplicates(
    fleet: Settings, tmp_path: Path, mode: str
) -> None:
    root, key = _archive(tmp_path), tmp_path / "keys" / "path.key"
    key.parent.mkdir()
    sub = allscreen(
        *("submit", str(root), "--run", "r", "--case-level", "1", "--labels", "filename"),
        *("--store-paths", mode, "--path-key", str(key)),
        settings=fleet,
    )
    assert sub.returncode == 0, sub.stderr
    assert (f"made a new path key in {key}" in sub.stderr) == (mode == "hashed")
    err, before = _interrupt_then_resume(
        fleet, tmp_path, "r", "--root", str(root), "--path-key", str(key)
    )
    assert 0 < before < len(PATIENTS) * PER_PATIENT  # the device died mid-run
    assert f"re-enqueued {len(PATIENTS) * PER_PATIENT - before} images" in err
    rows = outcomes(fleet)  # exactly one result per image
    assert len(rows) == len(PATIENTS) * PER_PATIENT
    assert {status for status, _ in rows.values()} == {"done"}
    engine = make_engine(fleet.database_url)
    with engine.connect() as conn:
        stored = conn.execute(select(Image.path, Image.location)).all()
        cases = conn.scalars(select(Case.name)).all()
        run_mode = conn.scalar(select(Run.path_mode))
    engine.dispose()
    assert run_mode == mode and len(cases) == len(PATIENTS)
    if mode == "relative":
        assert sorted(p for p, _ in stored) == sorted(
            str(f.relative_to(root)) for f in root.rglob("*.jpg")
        )
        assert all(bytes(loc) == p.encode() for p, loc in stored)
        assert not any(str(tmp_path) in text for text in _sql_text(fleet.database_url))
        assert sorted(cases) == sorted(PATIENTS)
        return
    assert key.stat().st_mode & 0o077 == 0  # the key file is its owner's alone
    assert all(len(p) == 64 and bytes(loc) == b"" for p, loc in stored)
    assert all(c.startswith("case-") for c in cases)
    texts = _sql_text(fleet.database_url)
    exports = [
        allscreen("export", "r", "--csv", "-", settings=fleet).stdout,
        allscreen("export", "r", "--cases", "--csv", "-", settings=fleet).stdout,
    ]
    report = tmp_path / "r.html"
    assert allscreen("report", "r", "--html", str(report), settings=fleet).returncode == 0
    exports.append(report.read_text())
    assert len(list(csv.DictReader(exports[0].splitlines()))) == len(rows)
    for name in _names(root):
        assert not [t for t in texts if name in t], f"{name} is stored in SQL"
        assert not [t for t in exports if name in t], f"{name} is in an export or the report"


def test_a_wrong_key_or_root_on_resume_is_one_clear_line(fleet: Settings, tmp_path: Path) -> None:
    root, key, other = _archive(tmp_path), tmp_path / "path.key", tmp_path / "other.key"
    other.write_text("f" * 64 + "\n")
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(root / PATIENTS[0], elsewhere / "moved")
    n = len(PATIENTS) * PER_PATIENT
    for mode in ("hashed", "relative"):
        given = ("--store-paths", mode, "--path-key", str(key))
        assert allscreen("submit", str(root), "--run", mode, *given, settings=fleet).returncode == 0
    cases = {
        ("hashed", "--root", str(root), "--path-key", str(other)): (
            f"path key {other} is not the key run hashed was made with"
        ),
        ("hashed", "--root", str(elsewhere), "--path-key", str(key)): (
            f"none of the {n} images of run hashed still to do is under {elsewhere} with this "
            "key: give the archive root the run was submitted from"
        ),
        ("hashed", "--root", str(root)): (
            "run hashed stores keyed hashes of its paths: give its key "
            "(--path-key FILE or ALLSCREEN_PATH_KEY_FILE)"
        ),
        ("relative",): (
            "run relative stores relative paths: give the archive root it was submitted "
            "from (--root PATH)"
        ),
        ("relative", "--root", str(elsewhere)): (
            f"none of the {n} images of run relative still to do is under {elsewhere}: "
            "give the archive root the run was submitted from"
        ),
    }
    for args, line in cases.items():
        r = allscreen("resume", *args, settings=fleet)
        assert (r.returncode, r.stderr) == (2, f"allscreen: error: {line}\n"), args
    again = allscreen("submit", str(root), "--run", "hashed", settings=fleet)
    assert (again.returncode, again.stderr) == (
        2,
        "allscreen: error: run hashed stores hashed paths; submit to it with "
        "--store-paths hashed (or name a new run)\n",
    )
    hashed = ("--store-paths", "hashed", "--path-key", str(other))
    again = allscreen("submit", str(root), "--run", "hashed", *hashed, settings=fleet)
    assert (again.returncode, again.stderr) == (
        2,
        f"allscreen: error: path key {other} is not the key run hashed was made with\n",
    )
    two = allscreen(
        "submit", str(root), str(elsewhere), "--store-paths", "relative", settings=fleet
    )
    assert two.returncode == 2 and two.stderr.count("\n") == 1
    assert "needs exactly one folder, the archive root" in two.stderr
    st = json.loads(allscreen("status", "hashed", "--json", settings=fleet).stdout)
    assert st["pending"] == n  # nothing was sent or recorded by the refused commands


def test_a_hashed_submission_stores_hashes_and_resubmits_to_nothing_on_each_database(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    root = _archive(tmp_path)
    key, made = load_key(tmp_path / "path.key", create=True)
    cases = CaseNamer(level=1)
    stored = store_for_submit("hashed", [root], key)
    first = submit([root], settings, run_name="h", cases=cases, stored=stored, err=io.StringIO())
    again = submit(
        [root],
        settings,
        run_name="h",
        cases=CaseNamer(level=1),
        stored=store_for_submit("hashed", [root], load_key(tmp_path / "path.key", create=False)[0]),
        err=io.StringIO(),
    )
    assert made and first.registered.new == first.enqueued.images == len(PATIENTS) * PER_PATIENT
    assert again.registered.new == 0 and again.enqueued.images == 0
    with engine.connect() as conn:
        paths = conn.scalars(select(Image.path)).all()
        names = conn.execute(select(Case.name, Case.patient)).all()
        run = conn.execute(select(Run.path_mode, Run.path_key_id)).one()
    expected = {
        key.digest(b"path", f.relative_to(root).as_posix().encode()) for f in root.rglob("*.jpg")
    }
    assert set(paths) == expected
    assert sorted(n for n, _ in names) == sorted(
        "case-" + key.digest(b"case", p.encode())[:20] for p in PATIENTS
    )
    assert run == ("hashed", key.fingerprint) and key.fingerprint not in key.digest(b"path", b"")
