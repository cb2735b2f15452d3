"""`upsert_results` on SQLite and PostgreSQL: one row per (run, image), and `done` is final."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select

from allscreen.results import ResultRow, upsert_results
from allscreen.schema import STATUS_DONE, STATUS_FAILED, Image, Result
from producer.archive import Found
from producer.register import get_or_create_run, register

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Stored:
    """The columns of a stored result that these tests look at."""

    image_id: int
    status: str
    label: str | None
    error: str | None
    device: str
    attempts: int


def registered_images(engine: Engine, tmp_path: Path, count: int = 1) -> tuple[int, list[int]]:
    """A run with `count` distinct registered images: (run id, image ids)."""
    run_id, created = get_or_create_run(engine, "results-test", pin=None)
    assert created
    found = []
    for i in range(count):
        path = tmp_path / f"WBC-Benign-{i:03d}.jpg"
        path.write_bytes(f"image {i}".encode())
        found.append(Found(os.fsencode(path), path.name, "Benign"))
    assert register(engine, run_id, found).new == count
    with engine.connect() as conn:
        ids = conn.scalars(select(Image.id).where(Image.run_id == run_id).order_by(Image.id))
        return run_id, [int(i) for i in ids]


def done(
    run_id: int, image_id: int, *, label: str = "Benign", device: str = "dev-a", attempts: int = 1
) -> ResultRow:
    """A classified result."""
    return ResultRow(
        run_id,
        image_id,
        STATUS_DONE,
        device,
        T0 + timedelta(minutes=attempts),
        label=label,
        confidence=0.9,
        scores=f'{{"{label}": 0.9}}',
        decode_ms=1.5,
        inference_ms=3.0,
        attempts=attempts,
    )


def failed(
    run_id: int,
    image_id: int,
    *,
    error: str = "model crashed",
    device: str = "dev-b",
    attempts: int = 1,
) -> ResultRow:
    """A failed result."""
    return ResultRow(
        run_id,
        image_id,
        STATUS_FAILED,
        device,
        T0 + timedelta(minutes=attempts),
        error=error,
        attempts=attempts,
    )


def stored(engine: Engine, run_id: int) -> list[Stored]:
    """Every result row of the run, by image id."""
    cols = (
        Result.image_id,
        Result.status,
        Result.label,
        Result.error,
        Result.device,
        Result.attempts,
    )
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(Result.run_id == run_id).order_by(Result.image_id))
        return [Stored(*row) for row in rows]


def test_upserting_the_same_result_twice_leaves_exactly_one_row(
    engine: Engine, tmp_path: Path
) -> None:
    run_id, (image_id,) = registered_images(engine, tmp_path)
    row = done(run_id, image_id)
    upsert_results(engine, [row])
    upsert_results(engine, [row])
    assert stored(engine, run_id) == [Stored(image_id, STATUS_DONE, "Benign", None, "dev-a", 1)]


def test_failing_twice_leaves_one_row_holding_the_latest_failure(
    engine: Engine, tmp_path: Path
) -> None:
    run_id, (image_id,) = registered_images(engine, tmp_path)
    upsert_results(engine, [failed(run_id, image_id, error="first", attempts=1)])
    upsert_results(engine, [failed(run_id, image_id, error="second", device="dev-c", attempts=2)])
    assert stored(engine, run_id) == [Stored(image_id, STATUS_FAILED, None, "second", "dev-c", 2)]


def test_a_failure_after_a_done_result_leaves_it_done(engine: Engine, tmp_path: Path) -> None:
    run_id, (image_id,) = registered_images(engine, tmp_path)
    upsert_results(engine, [done(run_id, image_id, label="Pre")])
    upsert_results(engine, [failed(run_id, image_id, error="late redelivery", attempts=2)])
    assert stored(engine, run_id) == [Stored(image_id, STATUS_DONE, "Pre", None, "dev-a", 1)]


def test_a_done_result_after_a_failure_replaces_it(engine: Engine, tmp_path: Path) -> None:
    run_id, (image_id,) = registered_images(engine, tmp_path)
    upsert_results(engine, [failed(run_id, image_id, error="model crashed", attempts=1)])
    upsert_results(engine, [done(run_id, image_id, label="Early", device="dev-c", attempts=2)])
    assert stored(engine, run_id) == [Stored(image_id, STATUS_DONE, "Early", None, "dev-c", 2)]
    with engine.connect() as conn:
        confidence, scores = conn.execute(
            select(Result.confidence, Result.scores).where(Result.image_id == image_id)
        ).one()
    assert confidence == 0.9 and scores == '{"Early": 0.9}'


def test_a_second_done_result_does_not_overwrite_the_first(engine: Engine, tmp_path: Path) -> None:
    run_id, (image_id,) = registered_images(engine, tmp_path)
    upsert_results(engine, [done(run_id, image_id, label="Pro", device="dev-a")])
    upsert_results(engine, [done(run_id, image_id, label="Pre", device="dev-b", attempts=2)])
    assert stored(engine, run_id) == [Stored(image_id, STATUS_DONE, "Pro", None, "dev-a", 1)]


def test_one_upsert_writes_many_images_and_settles_each_on_its_own(
    engine: Engine, tmp_path: Path
) -> None:
    run_id, ids = registered_images(engine, tmp_path, count=3)
    upsert_results(engine, [done(run_id, ids[0]), failed(run_id, ids[1]), failed(run_id, ids[2])])
    upsert_results(
        engine,
        [
            failed(run_id, ids[0], error="again", attempts=2),
            done(run_id, ids[1], label="Pre", attempts=2),
            failed(run_id, ids[2], error="again", attempts=2),
        ],
    )
    assert stored(engine, run_id) == [
        Stored(ids[0], STATUS_DONE, "Benign", None, "dev-a", 1),
        Stored(ids[1], STATUS_DONE, "Pre", None, "dev-a", 2),
        Stored(ids[2], STATUS_FAILED, None, "again", "dev-b", 2),
    ]


def test_upserting_no_rows_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    run_id, _ = registered_images(engine, tmp_path)
    upsert_results(engine, [])
    assert stored(engine, run_id) == []
