"""`submit` rides out a broker restart: it waits, sends what the broker lost, and loses nothing.

The real tests run `allscreen submit` as a process against a throwaway Redis of their own
(stopped and started again on the same port) with real workers and SQLite; the machine's
Redis stays up for the other tests.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from allscreen import defaults
from allscreen.db import ensure_schema, make_engine
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.errors import BrokerUnavailable
from allscreen.results import ResultRow, upsert_results
from allscreen.schema import STATUS_DONE, Image
from allscreen.settings import Settings, settings_env
from producer.archive import scan
from producer.outage import BrokerOutage
from producer.register import get_or_create_run, register
from producer.submit import watch
from tests.support.images import archive_of
from tests.support.queue import wait_for_full_window
from tests.support.runs import outcomes, wait_until
from tests.support.workers import workers


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_waits_grow_to_a_cap_and_stop_with_one_clear_message_at_the_deadline() -> None:
    clock, err = _Clock(), io.StringIO()
    outage = BrokerOutage(12, err, sleep=clock.sleep, clock=lambda: clock.now)
    lost = redis.ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")
    with pytest.raises(BrokerUnavailable) as caught:
        for _ in range(10):
            outage.wait(lost)
    assert clock.slept == [0.5, 1.0, 2.0, 4.0]  # the next, 5 s, would pass the 12 s allowed
    message = str(caught.value)
    assert "unreachable for 8 s" in message and "Connection refused" in message
    assert "submit it again" in message
    assert err.getvalue().count("lost the broker") == 4


def test_a_recovered_broker_gets_the_whole_allowance_again_and_is_counted() -> None:
    clock, err = _Clock(), io.StringIO()
    outage = BrokerOutage(3, err, sleep=clock.sleep, clock=lambda: clock.now)
    lost = redis.ConnectionError("gone")
    outage.wait(lost)
    outage.wait(lost)  # 1.5 s of the 3 s used
    outage.recovered()
    outage.wait(lost)
    outage.wait(lost)  # a fresh allowance: 0.5 + 1.0 again
    assert clock.slept == [0.5, 1.0, 0.5, 1.0]
    outage.recovered()
    assert outage.outages == 2 and outage.connected


def _submit(settings: Settings, archive: Path, run: str) -> subprocess.Popen[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALLSCREEN_")},
        **settings_env(settings),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "allscreen", "submit", str(archive), "--run", run],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _settings(broker: EmbeddedRedis, sqlite_url: str, retry: float) -> Settings:
    return Settings(
        broker_url=broker.url,
        database_url=sqlite_url,
        queue=f"allscreen-t-{uuid.uuid4().hex[:8]}",
        batch_size=4,
        visibility_timeout=30,
        max_queued_batches=2,  # no worker yet: submit fills 2 batches, then waits for room
        broker_retry_seconds=retry,
    )


@pytest.mark.slow
def test_submit_rides_out_a_broker_restart_and_every_image_is_screened_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    archive = archive_of(tmp_path / "archive", per_class=15)
    n = sum(1 for _ in archive.rglob("*.jpg"))
    broker = EmbeddedRedis().start()
    settings = _settings(broker, sqlite_url, retry=120)
    proc = _submit(settings, archive, "outage")
    try:
        wait_for_full_window(settings)
        broker.stop()  # keeps nothing on disk: the two queued batches are gone
        time.sleep(1.5)
        broker = EmbeddedRedis(port=broker.port).start()
        with workers(settings, tmp_path, "dev"):
            _, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err
            watch("outage", settings, err=io.StringIO())
    finally:
        proc.kill()
        broker.stop()
    assert "lost the broker" in err and "Traceback" not in err, err
    assert "rode out 1 broker outage(s)" in err, err
    got = outcomes(settings)  # exactly one result row per image
    assert len(got) == n
    assert all(status == "done" for status, _ in got.values()), got


@pytest.mark.slow
def test_submit_gives_up_with_one_message_when_the_broker_stays_away(
    sqlite_url: str, tmp_path: Path
) -> None:
    archive = archive_of(tmp_path / "archive", per_class=6)
    broker = EmbeddedRedis().start()
    settings = _settings(broker, sqlite_url, retry=3)
    proc = _submit(settings, archive, "gone")
    try:
        wait_for_full_window(settings)
        broker.stop()
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        broker.stop()
    assert proc.returncode == BrokerUnavailable.exit_code, err
    assert "Traceback" not in err, err
    assert "the broker has been unreachable for" in err and "submit it again" in err, err
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:  # the run is saved: every image is registered
            registered = conn.scalar(select(func.count()).select_from(Image))
    finally:
        engine.dispose()
    assert registered == sum(1 for _ in archive.rglob("*.jpg"))


def test_watch_says_once_that_the_broker_is_away_and_finishes_when_the_results_come(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "RECOVER_AFTER_SECONDS", 0.2)  # look for lost work at once
    port = EmbeddedRedis().start()
    port.stop()  # a port where no broker answers: a Redis that is down
    settings = Settings(
        broker_url=port.url, database_url=sqlite_url, queue=f"allscreen-t-{uuid.uuid4().hex[:8]}"
    )
    engine = make_engine(sqlite_url)
    ensure_schema(engine, create=True)
    run_id, _ = get_or_create_run(engine, "away", pin=None)
    register(engine, run_id, scan([os.fsencode(archive_of(tmp_path / "a", per_class=1))], "none"))
    with engine.connect() as conn:
        ids = [int(i) for i in conn.scalars(select(Image.id).where(Image.run_id == run_id))]
    err = io.StringIO()
    with ThreadPoolExecutor(1) as pool:
        watching = pool.submit(watch, "away", settings, err=err)
        wait_until(lambda: "the broker is unreachable" in err.getvalue(), 60, "watch to notice")
        time.sleep(3)  # several more polls, each finding the broker still away
        assert not watching.done()
        now = datetime.now(UTC)
        upsert_results(  # the devices' results arrive (the database is the truth)
            engine, [ResultRow(run_id, i, STATUS_DONE, "nano-1", now, label="Pre") for i in ids]
        )
        _, counts, _ = watching.result(timeout=60)
    engine.dispose()
    assert counts.done == len(ids) and counts.pending == 0
    assert err.getvalue().count("the broker is unreachable") == 1, err.getvalue()
    assert "Traceback" not in err.getvalue()
