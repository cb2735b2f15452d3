"""The write-time tallies equal a full recount, on SQLite and PostgreSQL, whatever the writes:
duplicates, a failure replaced in place by `done`, a late failure after `done`, deletes,
concurrent writers, and a database migrated from 0006 with results already in it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import Engine, delete, insert, text

from allscreen.db import alembic_config, ensure_schema, make_engine
from allscreen.results import ResultRow, upsert_results
from allscreen.schema import STATUS_DONE, STATUS_FAILED, Image, Result, Run
from allscreen.tallies import rebuild_tallies
from producer.register import get_or_create_run
from readout.queries import device_stats
from readout.status import status_dict
from readout.tally_reads import label_pairs, totals

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
TRUTHS = ("Pre", "Pro", None)
#: table → its columns; the counts and sums start at index _KEYS[table]
_KEYS = {
    "run_tallies": 1,
    "truth_tallies": 2,
    "result_tallies": 3,
    "latency_tallies": 4,
    "label_tallies": 4,
}
_COLUMNS = {
    "run_tallies": "run_id, images",
    "truth_tallies": "run_id, truth, images",
    "result_tallies": "run_id, device, minute, done, failed, inference_n, inference_ms_sum, "
    "wait_n, wait_s_sum",
    "latency_tallies": "run_id, device, kind, bucket, n",
    "label_tallies": "run_id, model_sha256, truth, label, n",
}


def tallies(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every non-zero tally row (sums rounded: + then - of a float may leave 1e-15)."""
    out = {}
    with engine.connect() as conn:
        for table, cols in _COLUMNS.items():
            rows = []
            for r in conn.execute(text(f"SELECT {cols} FROM {table}")):
                row = tuple(round(float(v), 6) if isinstance(v, float) else v for v in r)
                if table == "run_tallies" or any(row[_KEYS[table] :]):
                    rows.append(row)
            out[table] = sorted(rows)
    return out


def assert_recount(engine: Engine) -> None:
    """The tallies as written equal the tallies rebuilt from the rows."""
    written = tallies(engine)
    rebuild_tallies(engine)
    assert written == tallies(engine)


def seeded(engine: Engine, count: int, name: str = "tallied") -> tuple[int, list[int]]:
    """A run with `count` images, a third each labelled Pre, Pro and unlabelled."""
    run_id, _ = get_or_create_run(engine, name, pin=None)
    rows = [
        {
            "run_id": run_id,
            "sha256": f"{name}-{i}".encode().hex().ljust(64, "0")[:64],
            "path": f"{i}.jpg",
            "location": b"/nowhere",
            "size_bytes": 1,
            "deliveries": 0,
            "ground_truth": TRUTHS[i % 3],
        }
        for i in range(count)
    ]
    with engine.begin() as conn:
        ids = [int(i) for i in conn.scalars(insert(Image).returning(Image.id), rows)]
    return run_id, sorted(ids)


def result(run_id: int, image_id: int, k: int, *, status: str = STATUS_DONE) -> ResultRow:
    """A result spread over devices, minutes, labels and latencies by `k`."""
    finished = T0 + timedelta(seconds=37 * k)
    return ResultRow(
        run_id,
        image_id,
        status,
        f"nano-{k % 3}",
        finished,
        label=("Pre", "Pro")[k % 2] if status == STATUS_DONE else None,
        inference_ms=0.5 + (k % 40) * 0.7 if status == STATUS_DONE else None,
        queued_at=finished - timedelta(seconds=k % 11),
        model_sha256="ab" * 32,
        model_name="ref",
        model_version="1",
        error=None if status == STATUS_DONE else f"reason {k % 4}",
    )


def test_duplicates_retries_and_late_failures_leave_tallies_equal_to_a_recount(
    engine: Engine,
) -> None:
    run_id, ids = seeded(engine, 30)
    first = [
        result(run_id, i, k, status=STATUS_FAILED if k % 5 == 0 else STATUS_DONE)
        for k, i in enumerate(ids[:20])
    ]
    upsert_results(engine, first)
    upsert_results(engine, first[:10])  # an over-delivered batch, written again
    upsert_results(engine, [result(run_id, ids[0], 100)])  # a failure retried: done in place
    upsert_results(engine, [result(run_id, ids[1], 101, status=STATUS_FAILED)])  # done stays
    assert_recount(engine)
    t = totals(engine, run_id)
    assert (t.images, t.done, t.failed) == (30, 17, 3)
    with engine.begin() as conn:
        conn.execute(delete(Result).where(Result.image_id.in_(ids[2:6])))
    assert_recount(engine)
    assert sum(label_pairs(engine, run_id).values()) == totals(engine, run_id).done


def test_concurrent_writers_of_overlapping_batches_leave_tallies_equal_to_a_recount(
    engine: Engine,
) -> None:
    run_id, ids = seeded(engine, 240)

    batches = [ids[i : i + 16] for i in range(0, len(ids), 16)]

    def write(worker: int) -> None:
        # Four workers write every batch, each starting at a different one, so each batch is
        # over-delivered four times, often at once; a worker fails every other batch, so
        # later deliveries replace failures in place and never replace a `done`.
        for k in range(len(batches)):
            b = (k + 4 * worker) % len(batches)
            status = STATUS_FAILED if (b + worker) % 2 else STATUS_DONE
            upsert_results(
                engine, [result(run_id, i, i + worker, status=status) for i in batches[b]]
            )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    assert_recount(engine)
    t = totals(engine, run_id)
    assert t.done + t.failed == 240


def test_status_reads_the_same_figures_as_the_rows(engine: Engine) -> None:
    run_id, ids = seeded(engine, 12)
    upsert_results(engine, [result(run_id, i, k) for k, i in enumerate(ids[:9])])
    upsert_results(engine, [result(run_id, ids[9], 9, status=STATUS_FAILED)])
    with engine.connect() as conn:
        run = conn.execute(text("SELECT id, name FROM runs WHERE id = :i"), {"i": run_id}).one()
    data = status_dict(engine, Run(id=run.id, name=run.name))
    assert (data["total"], data["done"], data["failed"], data["pending"]) == (12, 9, 1, 2)
    # Truth Pre/Pro/None by image index, label Pre/Pro by it too: 0, 1, 6, 7 of 0, 1, 3, 4, 6, 7
    assert data["accuracy"] == 4 / 6
    stats = {d.device: d for d in device_stats(engine, run_id)}
    assert sum(d.done for d in stats.values()) == 9 and stats["nano-0"].failed == 1
    assert all(d.p50_ms is not None and d.p50_ms <= (d.p95_ms or 0) for d in stats.values())


def test_a_database_migrated_from_0006_counts_its_existing_results(db_url: str) -> None:
    engine = make_engine(db_url)
    cfg = alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(Run).values(name="old", created_at=T0).returning(Run.id)
        ).scalar_one()
    _, ids = seeded(engine, 9, name="old")
    rows = [result(run_id, i, k) for k, i in enumerate(ids[:6])]
    rows.append(result(run_id, ids[6], 6, status=STATUS_FAILED))
    with engine.begin() as conn:  # written with SQL, as 0006 code did: no tallies yet
        conn.execute(insert(Result), [vars_of(r) for r in rows])
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    ensure_schema(engine, create=False)
    t = totals(engine, run_id)
    assert (t.images, t.done, t.failed) == (9, 6, 1)
    assert_recount(engine)
    upsert_results(engine, [result(run_id, ids[6], 50)])  # and the triggers run from now on
    assert totals(engine, run_id).done == 7
    assert_recount(engine)
    engine.dispose()


def vars_of(row: ResultRow) -> dict[str, Any]:
    """A ResultRow as insert parameters."""
    return {f: getattr(row, f) for f in row.__slots__}
