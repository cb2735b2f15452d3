"""(4b) Result writes: rows/s of `upsert_results` into SQLite and PostgreSQL.

One writer upserts `--rows` realistic result rows in batches of 128 (the worker's batch size)
through the production path (`allscreen.results.upsert_results` on `allscreen.db.make_engine`)
into a fresh, migrated database whose `images` rows were inserted first (results has foreign
keys). In the same repeat it also measures a per-row baseline (one upsert per row, one
transaction each) on `--per-row` rows, to show what batching buys, and the production path on
a database whose tally triggers (allscreen/tally_sql.py) were dropped, to show what the
write-time tallies cost.
Run:
    .venv/bin/python -m bench.result_writes [--rows 200000] [--per-row 4000] [--repeats R]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from allscreen.db import dialect_insert, ensure_schema, make_engine
from allscreen.defaults import DEFAULT_BATCH_SIZE
from allscreen.results import ResultRow, upsert_results
from allscreen.schema import STATUS_DONE, Image, Result, Run
from allscreen.tally_sql import drop_triggers
from bench.common import images, machine, median
from bench.raw_limit import raw_rate

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"  #: where benchmark databases are made
WORKER_BATCH = DEFAULT_BATCH_SIZE  #: images per task, so rows per upsert in a worker
CLASSIFY_IMAGES = 1000  #: images of the same-run classification baseline (bench.raw_limit)
_SEED_CHUNK = 5000  #: images rows per executemany when seeding (not timed)
_names = itertools.count()


@contextmanager
def postgres_database(
    admin_url: str = PG_ADMIN_URL, prefix: str = "allscreen_bench"
) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one measurement; dropped afterwards."""
    name = f"{prefix}_{os.getpid()}_{next(_names)}"
    admin = create_engine(
        make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    """A fresh SQLite file for one measurement; removed with its WAL afterwards."""
    path = workdir / f"bench-{os.getpid()}-{next(_names)}.db"
    try:
        yield f"sqlite:///{path}"
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def database(kind: str, workdir: Path, admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A fresh database of `kind` (`sqlite` or `postgresql`), as a URL."""
    if kind == "postgresql":
        with postgres_database(admin_url) as url:
            yield url
    else:
        with sqlite_database(workdir) as url:
            yield url


def seed_images(engine: Engine, n: int, name: str) -> tuple[int, list[int]]:
    """Create run `name` with `n` images (fast, untimed); return the run id and image ids."""
    with engine.begin() as conn:
        run_id = int(
            conn.execute(
                insert(Run).values(name=name, created_at=datetime.now(UTC)).returning(Run.id)
            ).scalar_one()
        )
        for start in range(0, n, _SEED_CHUNK):
            conn.execute(
                insert(Image),
                [
                    {
                        "run_id": run_id,
                        "sha256": f"{i:064x}",
                        "path": f"shard-{i // 10_000:03d}/img-{i:07d}.png",
                        "location": f"/archive/shard-{i // 10_000:03d}/img-{i:07d}.png".encode(),
                        "size_bytes": 120,
                        "ground_truth": None,
                        "deliveries": 1,
                    }
                    for i in range(start, min(n, start + _SEED_CHUNK))
                ],
            )
        ids = [int(i) for i in conn.scalars(select(Image.id).where(Image.run_id == run_id))]
    return run_id, sorted(ids)


def result_rows(run_id: int, ids: list[int]) -> list[ResultRow]:
    """One `done` row per image, with the fields a worker fills in."""
    labels = ("Benign", "Early", "Pre", "Pro")
    sha = "f0d35bff0c4075817bb17984eeb7ddf339af522dbf3b240a36420312c4810d51"
    t0 = datetime.now(UTC)
    rows = []
    for k, image_id in enumerate(ids):
        label = labels[k % 4]
        scores = {name: (0.91 if name == label else 0.03) for name in labels}
        finished = t0 + timedelta(milliseconds=k)
        rows.append(
            ResultRow(
                run_id,
                image_id,
                STATUS_DONE,
                f"nano-{k % 8 + 1}",
                finished,
                label=label,
                confidence=0.91,
                scores=json.dumps(scores),
                model_sha256=sha,
                model_name="allscreen ALL reference",
                model_version="1",
                queued_at=finished - timedelta(seconds=2),
                started_at=finished - timedelta(milliseconds=14),
                decode_ms=0.8 + (k % 7) / 10,
                inference_ms=12.0 + (k % 5) / 10,
                attempts=1,
            )
        )
    return rows


def prebuilt_upsert(engine: Engine) -> Callable[[list[ResultRow]], None]:
    """Candidate write path: the production upsert, rows made dicts by attribute access.

    The statement is the one `upsert_results` sends (ON CONFLICT (run_id, image_id) DO UPDATE
    ... WHERE status <> 'done'), built once and executed with many parameter sets; only
    `dataclasses.asdict`, which deep-copies every field recursively, is replaced.
    """
    table = Result.__table__
    keys = ("run_id", "image_id")
    names = [f.name for f in fields(ResultRow)]
    stmt = dialect_insert(engine, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: stmt.excluded[c] for c in names if c not in keys},
        where=table.c.status != STATUS_DONE,
    )

    def write(rows: list[ResultRow]) -> None:
        if rows:
            with engine.begin() as conn:
                conn.execute(stmt, [{n: getattr(r, n) for n in names} for r in rows])

    return write


@dataclass(frozen=True, slots=True)
class WriteRate:
    """One timed write loop."""

    rows: int
    seconds: float
    cpu_seconds: float  #: this process's CPU (SQLAlchemy, driver, and for SQLite the engine)
    batch: int

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.seconds

    @property
    def cpu_ms_per_batch(self) -> float:
        """Writer CPU per upsert of `batch` rows, in ms."""
        return self.cpu_seconds * 1000 / (self.rows / self.batch)


def timed_writes(
    write: Callable[[list[ResultRow]], None], rows: list[ResultRow], batch: int
) -> WriteRate:
    """Write `rows` in slices of `batch`, one call (one transaction) each."""
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(rows), batch):
        write(rows[start : start + batch])
    return WriteRate(len(rows), time.perf_counter() - t0, time.process_time() - c0, batch)


VARIANT_TITLES = {
    "batched": f"production: `upsert_results`, {WORKER_BATCH} rows per call",
    "per-row": "baseline: `upsert_results`, 1 row per call (one transaction each)",
    "untallied": f"`upsert_results`, {WORKER_BATCH} rows per call, tally triggers dropped",
}


def variants(kind: str) -> tuple[str, ...]:
    """The write paths measured on every database kind."""
    del kind
    return ("batched", "per-row", "untallied")


def measure(kind: str, variant: str, n: int, workdir: Path, admin_url: str) -> WriteRate:
    """One variant on a fresh, migrated database of `kind`."""
    with database(kind, workdir, admin_url) as url:
        engine = make_engine(url)
        try:
            ensure_schema(engine, create=True)
            run_id, ids = seed_images(engine, n, f"writes-{variant}")
            rows = result_rows(run_id, ids)
            if variant == "untallied":  # what the write-time tallies cost, in the same run
                with engine.begin() as conn:
                    drop_triggers(conn)
            if variant == "per-row":
                return timed_writes(lambda b: upsert_results(engine, b), rows, 1)
            result = timed_writes(lambda b: upsert_results(engine, b), rows, WORKER_BATCH)
            with engine.connect() as conn:
                written = conn.scalar(select(func.count()).select_from(Result))
            assert written == n, (written, n)
            return result
        finally:
            engine.dispose()


def run_write_benchmark(
    *,
    rows: int,
    per_row: int,
    repeats: int,
    kinds: tuple[str, ...] = ("sqlite", "postgresql"),
    admin_url: str = PG_ADMIN_URL,
    pipeline_rate: float | None = None,
    classify_rate: float | None = None,
    out: Callable[[str], None] = print,
) -> dict[tuple[str, str], list[WriteRate]]:
    """All variants on every database kind, `repeats` times, alternating; print the tables."""
    got: dict[tuple[str, str], list[WriteRate]] = {(k, v): [] for k in kinds for v in variants(k)}
    with tempfile.TemporaryDirectory(prefix="allscreen-writes-") as tmp:
        for r in range(repeats):
            for kind in kinds:
                for variant in variants(kind):
                    n = per_row if variant == "per-row" else rows
                    w = measure(kind, variant, n, Path(tmp), admin_url)
                    got[kind, variant].append(w)
                    out(
                        f"  repeat {r + 1} {kind:10s} {variant:8s}: {w.rows} rows, "
                        f"{w.rate:.0f} rows/s, {w.cpu_ms_per_batch:.2f} ms CPU per "
                        f"{w.batch}-row write"
                    )
    out("")
    out(
        "| database | write path | rows | median rows/s | runs (rows/s) | ms per write | "
        "writer CPU ms per image | vs per-row | vs production |"
    )
    out("|---|---|---|---|---|---|---|---|---|")
    for kind in kinds:
        for variant in variants(kind):
            ws = got[kind, variant]
            rate = median([w.rate for w in ws])
            out(
                f"| {kind} | {VARIANT_TITLES[variant]} | {ws[0].rows} | {rate:.0f} | "
                f"{' '.join(f'{w.rate:.0f}' for w in ws)} | {1000 * ws[0].batch / rate:.1f} | "
                f"{median([w.cpu_seconds * 1000 / w.rows for w in ws]):.3f} | "
                f"{_ratio(ws, got[kind, 'per-row']):.1f}x | "
                f"{_ratio(ws, got[kind, 'batched']):.2f}x |"
            )
    out("")
    for kind in kinds:
        batched = median([w.rate for w in got[kind, "batched"]])
        line = f"{kind}: production {batched:.0f} rows/s per writer"
        if classify_rate:
            line += (
                f" = {batched / classify_rate:.2f}x the {classify_rate:.0f} images/s this machine "
                "classified in this run (bench.raw_limit, all cores)"
            )
        if pipeline_rate:
            line += (
                f", {batched / pipeline_rate:.2f}x the stub pipeline's {pipeline_rate:.0f} img/s"
            )
        out(line)
    return got


def _ratio(xs: list[WriteRate], base: list[WriteRate]) -> float:
    """Median over repeats of the rate ratio measured in the same repeat."""
    return median([x.rate / b.rate for x, b in zip(xs, base, strict=True)])


def main() -> None:
    """Print the write-rate tables."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--per-row", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    ap.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = ap.parse_args()
    print(f"# result writes: 1 writer, batches of {WORKER_BATCH}; {machine()}")
    # The baseline of the ratio is measured here, in this run, not typed in.
    classify_rate = median(
        [raw_rate(images(CLASSIFY_IMAGES), os.cpu_count() or 1) for _ in range(args.repeats)]
    )
    print(f"classification baseline (raw limit, this run): {classify_rate:.0f} images/s")
    run_write_benchmark(
        rows=args.rows,
        per_row=args.per_row,
        repeats=args.repeats,
        kinds=tuple(args.databases),
        admin_url=args.pg_admin_url,
        classify_rate=classify_rate,
    )


if __name__ == "__main__":
    main()
