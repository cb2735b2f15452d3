"""A vanished device's batches go back to the queue when its lease expires, exactly once."""

from __future__ import annotations

import io
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from allscreen import defaults
from allscreen.db import make_engine
from allscreen.messages import TASK_CLASSIFY
from allscreen.schema import Result
from allscreen.settings import Settings
from producer.submit import submit
from tests.support.runs import outcomes, result_count, wait_until
from tests.support.workers import WorkerProcess
from worker.app import make_app
from worker.reclaim import Holder, claim_dead, holders_key, lease_key, reclaim

#: Seconds from a kill to the dead worker's last image done elsewhere: the presence lease
#: (30 s), one heartbeat period (10 s) and the batch itself, with room for a loaded machine.
WITHIN_SECONDS = 60.0


@pytest.fixture
def client(broker_url: str) -> Iterator[redis.Redis[bytes]]:
    """A client on the test's Redis database."""
    c: redis.Redis[bytes] = redis.Redis.from_url(broker_url)
    yield c
    c.close()


def _delivered(app: Any, queue: str) -> str:
    """Send one batch message and take it without acknowledging it, as a worker that then
    loses power would (nothing is handed back when its connection goes)."""
    app.send_task(TASK_CLASSIFY, args=[{"run": 1}], queue=queue)
    with app.connection_for_write() as conn:
        conn.default_channel.qos.restore_at_shutdown = False
        message = conn.default_channel.basic_get(queue, no_ack=False)
        assert message is not None
        return str(message.delivery_tag)


def test_a_dead_holders_batch_goes_back_once_however_many_workers_look(
    fleet: Settings, client: redis.Redis[bytes]
) -> None:
    app = make_app(fleet)
    tag = _delivered(app, fleet.queue)
    assert client.llen(fleet.queue) == 0 and client.hexists("unacked", tag)
    dead = Holder(client, fleet.queue, "gone@bench")
    dead.hold(tag)
    client.delete(lease_key(fleet.queue, dead.instance))  # its heartbeat stopped
    first = reclaim(client, fleet.queue, app)
    second = reclaim(client, fleet.queue, app)
    assert [(o.node, n) for o, n in first] == [("gone@bench", 1)]
    assert second == []
    assert client.llen(fleet.queue) == 1 and not client.hexists("unacked", tag)
    assert not client.hexists(holders_key(fleet.queue), dead.instance)


def test_a_slow_but_beating_holder_keeps_its_batch(
    fleet: Settings, client: redis.Redis[bytes]
) -> None:
    app = make_app(fleet)
    tag = _delivered(app, fleet.queue)
    slow = Holder(client, fleet.queue, "slow@bench")
    slow.hold(tag)
    slow.renew([tag])  # a beat, however long its batch has been running
    assert claim_dead(client, fleet.queue) == []
    assert reclaim(client, fleet.queue, app) == []
    assert client.llen(fleet.queue) == 0 and client.hexists("unacked", tag)


def test_a_batch_a_live_holder_took_over_is_not_handed_back(
    fleet: Settings, client: redis.Redis[bytes]
) -> None:
    app = make_app(fleet)
    tag = _delivered(app, fleet.queue)
    dead = Holder(client, fleet.queue, "gone@bench")
    dead.hold(tag)  # its last held set still names the batch ...
    Holder(client, fleet.queue, "live@bench").hold(tag)  # ... that another worker now holds
    client.delete(lease_key(fleet.queue, dead.instance))
    [(orphans, restored)] = reclaim(client, fleet.queue, app)
    assert orphans.tags == () and restored == 0
    assert client.llen(fleet.queue) == 0 and client.hexists("unacked", tag)


def _held_image_ids(client: redis.Redis[bytes], queue: str, device: str) -> set[int]:
    """Image ids of the batches the worker of `device` holds unacknowledged now."""
    holders = {k.decode(): v.decode() for k, v in client.hgetall(holders_key(queue)).items()}
    ids: set[int] = set()
    for instance, node in holders.items():
        if not node.startswith(f"{device}@"):
            continue
        for tag in client.smembers(f"allscreen:held:{queue}:{instance}"):
            raw = client.hget("unacked", tag)
            if raw is None:
                continue
            payload = json.loads(raw)[0]
            args = json.loads(payload["body"])[0]
            ids.update(int(img["id"]) for img in args[0]["images"])
    return ids


@pytest.mark.slow
def test_a_worker_killed_mid_batch_has_its_batch_finished_elsewhere_within_a_minute(
    fleet: Settings, archive: Path, tmp_path: Path
) -> None:
    # The default visibility timeout (600 s): only the heartbeat can bring the batch back soon.
    settings = fleet.model_copy(
        update={
            "visibility_timeout": defaults.DEFAULT_VISIBILITY_TIMEOUT,
            "max_queued_batches": 100,
        }
    )
    rescuer = WorkerProcess(
        settings, "rescuer", tmp_path / "rescuer.log", extra_env={"ALLSCREEN_EIM_DELAY_MS": "60"}
    )
    doomed = WorkerProcess(
        settings, "doomed", tmp_path / "doomed.log", extra_env={"ALLSCREEN_EIM_DELAY_MS": "500"}
    )
    assert settings.broker_url is not None
    client: redis.Redis[bytes] = redis.Redis.from_url(settings.broker_url)
    try:
        rescuer.wait_ready()
        doomed.wait_ready()
        submit([archive], settings, run_name="vanish", err=io.StringIO())
        held: set[int] = set()

        def doomed_holds_a_batch() -> bool:
            held.update(_held_image_ids(client, settings.queue, "doomed"))
            return bool(held)

        wait_until(doomed_holds_a_batch, 60, "the doomed worker to take a batch")
        doomed.kill(signal.SIGKILL)
        killed = time.monotonic()
        engine = make_engine(settings.database_url)
        try:

            def held_images_done() -> bool:
                with engine.connect() as conn:
                    rows = conn.execute(
                        select(Result.image_id, Result.device).where(Result.image_id.in_(held))
                    ).all()
                return len(rows) == len(held)

            wait_until(held_images_done, 3 * WITHIN_SECONDS, "the dead worker's batch")
            took = time.monotonic() - killed
            with engine.connect() as conn:
                devices = set(
                    conn.scalars(select(Result.device).where(Result.image_id.in_(held))).all()
                )
        finally:
            engine.dispose()
        wait_until(lambda: result_count(settings) == 24, 60, "the rest of the run")
    finally:
        client.close()
        doomed.stop()
        rescuer.stop()
    print(f"kill to the dead worker's last image done: {took:.1f} s")  # shown with -s
    assert took < WITHIN_SECONDS, f"the dead worker's batch took {took:.0f} s to finish"
    assert devices == {"rescuer"}
    # A worker holds the batch it runs and the next one it has reserved (prefetch 2, one
    # process): both come back, or the running one alone if the next was not fetched yet.
    assert re.search(
        r"device doomed@\S+ stopped beating: handed [12] of its batches back", rescuer.text()
    )
    got = outcomes(settings)  # exactly one row per image
    assert len(got) == 24 and all(status == "done" for status, _ in got.values())
