"""A batch's SQL costs a device far from PostgreSQL one round trip to begin, one to write.

Counted by the benchmarks' delaying proxy (`bench.netdelay`, here adding no delay), which
counts the exchanges a client starts: a count, not a time, so a loaded machine cannot move it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, insert

from allscreen.db import ensure_schema, make_engine
from allscreen.results import ResultRow, upsert_results
from allscreen.schema import Image, Run
from bench.netdelay import DelayProxy
from bench.remote_fleet import with_port
from worker.store import begin_batch


@pytest.fixture
def far(pg_url: str) -> Iterator[tuple[Engine, DelayProxy, int, list[int]]]:
    """(An engine reaching a migrated PostgreSQL through a counting proxy, the proxy, a run,
    its three images), its pool warmed so that connecting is not what is counted."""
    direct = make_engine(pg_url)
    ensure_schema(direct, create=True)
    with direct.begin() as conn:
        now = datetime.now(UTC)
        run = conn.execute(
            insert(Run).values(name="far", created_at=now).returning(Run.id)
        ).scalar_one()
        ids = [
            conn.execute(
                insert(Image)
                .values(
                    run_id=run, sha256=f"{i:064x}", path=f"{i}.png", location=b"x", size_bytes=1
                )
                .returning(Image.id)
            ).scalar_one()
            for i in range(3)
        ]
    direct.dispose()
    target = urlsplit(pg_url)
    proxy = DelayProxy((target.hostname or "127.0.0.1", target.port or 5432), 0.0).start()
    engine = make_engine(with_port(pg_url, proxy.port), pre_ping=False)
    try:
        begin_batch(engine, run, ids)  # connects, and reads the server's settings once
        yield engine, proxy, run, ids
    finally:
        engine.dispose()
        proxy.stop()


def test_beginning_a_batch_is_one_round_trip_that_counts_and_reads_done(
    far: tuple[Engine, DelayProxy, int, list[int]],
) -> None:
    engine, proxy, run, ids = far
    now = datetime.now(UTC)
    upsert_results(engine, [ResultRow(run, ids[0], "done", "d", now, label="Pro")])
    before = proxy.round_trips
    done, deliveries = begin_batch(engine, run, ids)
    assert proxy.round_trips - before == 1
    assert done == {ids[0]}
    assert deliveries == dict.fromkeys(ids, 2)  # the fixture's warm-up, then this one


def test_writing_a_batch_of_results_is_one_round_trip_and_kept(
    far: tuple[Engine, DelayProxy, int, list[int]],
) -> None:
    engine, proxy, run, ids = far
    now = datetime.now(UTC)
    before = proxy.round_trips
    upsert_results(engine, [ResultRow(run, i, "done", "d", now, label="Pro") for i in ids])
    assert proxy.round_trips - before == 1
    done, _ = begin_batch(engine, run, ids)
    assert done == set(ids)  # committed: another connection's statement sees the rows
