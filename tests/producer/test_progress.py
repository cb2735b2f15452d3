"""`wait_for_run`: the progress poll, and how it backs off when counting a run gets slow."""

from __future__ import annotations

import io
import time

import pytest
from sqlalchemy import Engine, select

import producer.progress
from allscreen.runs import Counts
from producer.progress import wait_for_run


def test_the_poll_backs_off_when_counting_the_run_is_slow(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([Counts(100, d, 0) for d in (0, 10, 20, 100)])

    def slow_counts(_engine: Engine, _run_id: int) -> Counts:
        end = time.monotonic() + 0.05  # a count over a very large run (sleep is patched)
        while time.monotonic() < end:
            pass
        return next(answers)

    sleeps: list[float] = []
    monkeypatch.setattr(producer.progress, "counts", slow_counts)
    monkeypatch.setattr(time, "sleep", sleeps.append)
    final, _ = wait_for_run(engine, 1, io.StringIO(), poll=0.5)
    assert final.done == 100
    assert len(sleeps) == 3
    # 20x the 50 ms count: the database spends at most ~5% of its time on the progress line.
    assert all(s >= 1.0 for s in sleeps)


def test_the_poll_keeps_its_interval_when_counting_is_fast(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([Counts(10, d, 0) for d in (0, 5, 10)])
    sleeps: list[float] = []
    monkeypatch.setattr(producer.progress, "counts", lambda _e, _r: next(answers))
    monkeypatch.setattr(time, "sleep", sleeps.append)
    wait_for_run(engine, 1, io.StringIO(), poll=0.5)
    assert sleeps == [0.5, 0.5]


def _run_with_results(engine: Engine, *, n: int, per_second: float) -> int:
    """A run whose `n` results finished `per_second` apart, the newest 10 minutes ago."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from allscreen.results import ResultRow, upsert_results
    from allscreen.schema import STATUS_DONE, Image
    from producer.register import get_or_create_run

    run_id, _ = get_or_create_run(engine, "paced", pin=None)
    with engine.begin() as conn:
        conn.execute(
            insert(Image),
            [
                {"run_id": run_id, "sha256": f"{i:064x}", "path": f"{i}.jpg",
                 "location": b"/x", "size_bytes": 1, "deliveries": 0}
                for i in range(n)
            ],
        )  # fmt: skip
        ids = [int(i) for i in conn.scalars(select(Image.id).where(Image.run_id == run_id))]
    newest = datetime.now(UTC) - timedelta(minutes=10)  # the producer's clock does not matter
    upsert_results(
        engine,
        [
            ResultRow(run_id, image_id, STATUS_DONE, "d",
                      newest - timedelta(seconds=(n - 1 - k) / per_second))
            for k, image_id in enumerate(ids)
        ],
    )  # fmt: skip
    return run_id


def test_the_rate_starts_from_the_runs_own_recent_results_not_from_zero(engine: Engine) -> None:
    run_id = _run_with_results(engine, n=300, per_second=20.0)
    seeded = producer.progress.recent_rate(engine, run_id)
    assert 18.0 <= seeded <= 22.0
    out = io.StringIO()
    line = producer.progress.ProgressLine(out, 400, initial_rate=seeded)
    line.update(Counts(400, 300, 0), force=True)
    assert "20 img/s" in out.getvalue() and "ETA 0:05" in out.getvalue()


def test_a_log_gets_plain_lines_and_a_terminal_gets_a_bar(engine: Engine) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    log, tty = io.StringIO(), Terminal()
    for stream in (log, tty):
        line = producer.progress.ProgressLine(stream, 10, initial_rate=2.0)
        line.update(Counts(10, 4, 1), force=True)
        line.close()
    assert log.getvalue() == "5/10 (50%)  done 4  failed 1  2 img/s  ETA 0:02\n"
    assert "\x1b" not in log.getvalue()  # no control codes where nobody sees them
    assert "━" in tty.getvalue() and "5/10" in tty.getvalue() and "2 img/s" in tty.getvalue()
