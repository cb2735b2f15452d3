"""`wait_for_run`: the progress poll, and how it backs off when counting a run gets slow."""

from __future__ import annotations

import io
import time

import pytest
from sqlalchemy import Engine

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
