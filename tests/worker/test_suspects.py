"""A worker process that dies on a batch again and again: only the image it died on fails.

Deaths are emulated in process: the reader (the `path` transport's, injected) raises a
BaseException for the scheduled (delivery, image) pairs, which unwinds `run_batch` as a
process's death would stop it, leaving what was committed. The model is the real reference
model behind the real runner; the images are real PNGs.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import Engine, select

from allscreen.messages import Batch, ImageItem
from allscreen.schema import Image, Result
from allscreen.settings import Settings
from producer.archive import Found
from producer.register import get_or_create_run, register
from worker.batch import run_batch
from worker.runner import GuardedImageRunner
from worker.session import ModelSession
from worker.suspects import ISOLATED_DEATHS, over_delivered, plan_delivery

REFERENCE = Path(__file__).resolve().parents[2] / "model" / "allscreen-all.eim"
LIMIT = 1  #: max_deliveries in these tests


class _Died(BaseException):
    """The emulated death of the worker process."""


def _items(n: int) -> list[ImageItem]:
    return [ImageItem(i, f"{i:064x}", data=b"x") for i in range(1, n + 1)]


def test_a_batch_within_its_deliveries_runs_whole_and_in_its_order() -> None:
    items = _items(4)[::-1]
    assert not over_delivered(items, {2}, {i.id: LIMIT for i in items}, LIMIT)
    plan = plan_delivery(items, {2}, isolated=False, attempts_alone={})
    assert ([i.id for i in plan.todo], plan.blamed, plan.isolated) == ([4, 3, 1], [], False)


def test_an_over_delivered_batch_runs_alone_and_gives_up_only_on_repeated_deaths() -> None:
    items = _items(4)[::-1]
    assert over_delivered(items, set(), {1: LIMIT + 1}, LIMIT)
    plan = plan_delivery(items, {4}, isolated=True, attempts_alone={1: 1, 2: ISOLATED_DEATHS, 3: 0})
    assert [i.id for i in plan.todo] == [1, 3]
    assert [(i.id, n) for i, n in plan.blamed] == [(2, ISOLATED_DEATHS)]
    assert plan.isolated


@pytest.fixture
def session() -> Iterator[ModelSession]:
    s = ModelSession(
        REFERENCE,
        factory=lambda: GuardedImageRunner(str(REFERENCE), start_timeout=30, timeout=10),
        attempts=2,
    )
    yield s
    s.close()


def _batch(engine: Engine, tmp_path: Path, n: int) -> tuple[Batch, dict[int, str]]:
    run_id, _ = get_or_create_run(engine, "deaths", pin=None)
    rng = np.random.default_rng(0)
    found = []
    for k in range(n):
        path = tmp_path / f"smear-{k}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
        found.append(Found(os.fsencode(path), path.name, None))
    register(engine, run_id, iter(found))
    with engine.connect() as conn:
        rows = conn.execute(
            select(Image.id, Image.sha256, Image.location)
            .where(Image.run_id == run_id)
            .order_by(Image.id)
        ).all()
    items = tuple(ImageItem(int(i), str(sha), path=bytes(loc).decode()) for i, sha, loc in rows)
    return Batch(run_id, time.time(), items), {int(i): bytes(loc).decode() for i, _, loc in rows}


def _deliver(
    batch: Batch,
    deaths: dict[int, str],
    *,
    session: ModelSession,
    engine: Engine,
    settings: Settings,
) -> int:
    """Deliver `batch` until a delivery completes; `deaths[k]` is where delivery k dies."""
    for delivery in range(1, 20):

        def reader(path: str, _max: int, delivery: int = delivery) -> bytes:
            if deaths.get(delivery) == path:
                raise _Died
            data = Path(path).read_bytes()
            assert hashlib.sha256(data).hexdigest()
            return data

        try:
            run_batch(
                batch, session=session, engine=engine, device="d", settings=settings, reader=reader
            )
        except _Died:
            continue
        return delivery
    raise AssertionError("the batch never completed")


def _outcomes(engine: Engine) -> dict[int, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Result.image_id, Result.status, Result.error)).all()
    assert len(rows) == len({r.image_id for r in rows})  # one row per image
    return {int(i): (str(s), e) for i, s, e in rows}


def test_a_poison_image_fails_alone_after_dying_twice_with_it_in_flight(
    engine: Engine, tmp_path: Path, session: ModelSession
) -> None:
    batch, paths = _batch(engine, tmp_path, 6)
    poison = sorted(paths)[3]
    settings = Settings(database_url=str(engine.url), max_deliveries=LIMIT, transport="path")
    deliveries = _deliver(
        batch,
        dict.fromkeys(range(1, 20), paths[poison]),
        session=session,
        engine=engine,
        settings=settings,
    )
    got = _outcomes(engine)
    assert deliveries == LIMIT + ISOLATED_DEATHS + 1
    status, error = got[poison]
    assert status == "failed" and error is not None
    assert f"died {ISOLATED_DEATHS} times while classifying this image alone" in error
    assert all(s == "done" for i, (s, _) in got.items() if i != poison)
    assert len(got) == 6


def test_processes_killed_from_outside_on_different_images_fail_nothing(
    engine: Engine, tmp_path: Path, session: ModelSession
) -> None:
    batch, paths = _batch(engine, tmp_path, 6)
    ids = sorted(paths)
    settings = Settings(database_url=str(engine.url), max_deliveries=LIMIT, transport="path")
    # Killed on three deliveries in a row, never twice on the same image while alone.
    kills = {1: paths[ids[2]], 2: paths[ids[0]], 3: paths[ids[4]], 4: paths[ids[1]]}
    _deliver(batch, kills, session=session, engine=engine, settings=settings)
    got = _outcomes(engine)
    assert sorted(got) == ids
    assert all(s == "done" for s, _ in got.values())
