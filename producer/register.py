"""Registering an archive in SQL before anything is enqueued: SQL is the source of truth."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from allscreen.db import dialect_insert
from allscreen.results import ResultRow, upsert_results
from allscreen.schema import STATUS_FAILED, Image, Run
from producer.archive import Found
from producer.case_rows import assign_cases, check_cases
from producer.cases import CaseName, CaseNamer
from producer.recent import RecentBytes
from producer.stored_paths import PathStore, check_run_mode

PRODUCER_DEVICE = "producer"  #: `device` of failures found before any worker saw the file
_CHUNK = 500  #: rows per INSERT: few round trips, bounded memory


@dataclass(slots=True)
class RegisterStats:
    """What registration found."""

    files: int = 0
    new: int = 0
    unreadable: int = 0


def get_or_create_run(
    engine: Engine, name: str, *, pin: str | None, paths: PathStore | None = None
) -> tuple[int, bool]:
    """The id of run `name`, creating it; and whether it was created now.

    A run keeps the path mode (and key fingerprint) it was created with; adding to it in
    another mode or under another key is refused (PathMismatch).
    """
    paths = paths or PathStore()
    with engine.begin() as conn:
        existing = conn.execute(
            select(Run.id, Run.path_mode, Run.path_key_id).where(Run.name == name)
        ).first()
        if existing is not None:
            check_run_mode(name, existing.path_mode, existing.path_key_id, paths)
            if pin is not None:
                conn.execute(update(Run).where(Run.id == existing.id).values(model_sha256=pin))
            return int(existing.id), False
        key_id = paths.key.fingerprint if paths.key is not None else None
        stmt = (
            dialect_insert(engine, Run.__table__)
            .values(
                name=name,
                created_at=datetime.now(UTC),
                model_sha256=pin,
                path_mode=paths.mode,
                path_key_id=key_id,
            )
            .on_conflict_do_nothing(index_elements=["name"])
        )
        conn.execute(stmt)
        run_id = conn.scalar(select(Run.id).where(Run.name == name))
    assert run_id is not None
    return int(run_id), True


_READ_CHUNK = 1 << 20


def hash_file(location: bytes, keep: RecentBytes | None = None) -> tuple[str, int]:
    """sha256 and size of a file, read in chunks; a file of one chunk goes to `keep`."""
    with open(location, "rb") as fh:
        first = fh.read(_READ_CHUNK)
        digest = hashlib.sha256(first)
        size = len(first)
        for chunk in iter(lambda: fh.read(_READ_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    sha = digest.hexdigest()
    if keep is not None and first and len(first) == size:
        keep.keep(sha, first)
    return sha, size


def register(
    engine: Engine,
    run_id: int,
    found: Iterable[Found],
    *,
    on_progress: Callable[[RegisterStats], None] = lambda _: None,
    keep: RecentBytes | None = None,
    cases: CaseNamer | None = None,
    paths: PathStore | None = None,
) -> RegisterStats:
    """Hash and insert every found image; same content twice is registered once.

    With `keep`, the bytes read for hashing are held there for the enqueuer.

    A file that cannot be read is registered under a key derived from its path and recorded
    as failed at once, so it shows up in status and export instead of vanishing.

    With `cases`, each image is put in its case; an image already in another case is refused
    (CaseConflict), so resubmitting with the same mapping changes nothing.

    `paths` says what is stored of each path (`producer.stored_paths`); by default the
    relative path and the absolute location.
    """
    paths = paths or PathStore()
    stats = RegisterStats()
    rows: list[dict[str, object]] = []
    failures: list[tuple[str, str]] = []
    named: list[CaseName | None] = []
    for item in found:
        stats.files += 1
        path, location = paths.stored(item)
        try:
            sha, size = hash_file(item.location, keep)
        except OSError as exc:
            stats.unreadable += 1
            # Derived from what is stored: a hashed run's rows hold no unkeyed hash of a name.
            sha = hashlib.sha256(b"unreadable\0" + (location or path.encode())).hexdigest()
            size = 0
            failures.append((sha, f"cannot read file: {exc.strerror or exc}"))
        rows.append(
            {
                "run_id": run_id,
                "sha256": sha,
                "path": path,
                "location": location,
                "size_bytes": size,
                "ground_truth": item.ground_truth,
                "deliveries": 0,
                "case_id": None,
            }
        )
        named.append(paths.case(cases.case_of(item.display)) if cases is not None else None)
        if len(rows) >= _CHUNK:
            stats.new += _insert(engine, rows, run_id, failures, named)
            on_progress(stats)
    stats.new += _insert(engine, rows, run_id, failures, named)
    on_progress(stats)
    return stats


_INSERTS: dict[str, Any] = {}


def _insert_statement(engine: Engine) -> Any:
    # Compiled once per dialect and executed with many parameter sets ("insertmanyvalues"):
    # a multi-row VALUES built afresh for every chunk spent most of its time compiling.
    # The ids it returns are the rows this call added: another producer registering the same
    # run at once adds its own, so counting the run's rows before and after would not do.
    name = engine.dialect.name
    if name not in _INSERTS:
        stmt = dialect_insert(engine, Image.__table__)
        stmt = stmt.on_conflict_do_nothing(index_elements=["run_id", "sha256"])
        _INSERTS[name] = stmt.returning(Image.__table__.c.id)
    return _INSERTS[name]


def _insert(
    engine: Engine,
    rows: list[dict[str, object]],
    run_id: int,
    failures: list[tuple[str, str]],
    named: list[CaseName | None],
) -> int:
    """Insert `rows` (and record `failures`); return how many rows were new."""
    added = 0
    if rows:
        wanted = assign_cases(engine, run_id, rows, named)
        with engine.begin() as conn:
            added = len(conn.execute(_insert_statement(engine), rows).all())
        if wanted:
            check_cases(engine, run_id, rows, wanted)
        rows.clear()
        named.clear()
    if failures:
        record_failures(engine, run_id, failures)
        failures.clear()
    return added


def record_failures(engine: Engine, run_id: int, failures: list[tuple[str, str]]) -> None:
    """Record failed results for images (by sha256) the producer could not hand to a worker."""
    reasons = dict(failures)
    with engine.connect() as conn:
        ids = conn.execute(
            select(Image.id, Image.sha256).where(
                Image.run_id == run_id, Image.sha256.in_(list(reasons))
            )
        ).all()
    now = datetime.now(UTC)
    upsert_results(
        engine,
        [
            ResultRow(run_id, int(i), STATUS_FAILED, PRODUCER_DEVICE, now, error=reasons[sha])
            for i, sha in ids
        ],
    )
