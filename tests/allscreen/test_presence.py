"""Worker heartbeat records in a real Redis: listed per queue, expiring, withdrawn."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from allscreen.presence import DevicePresence, connect, online, presence_key, publish, withdraw


@pytest.fixture
def client(broker_url: str) -> Iterator[redis.Redis[bytes]]:
    """A client on the tests' flushed Redis database."""
    c = connect(broker_url)
    yield c
    c.close()


def _record(node: str, queue: str = "fleet", device: str = "nano-1") -> DevicePresence:
    return DevicePresence(
        node=node,
        device=device,
        queue=queue,
        concurrency=1,
        model_file="/models/modelfile.eim",
        model_sha256="c" * 64,
        model_name="ALL",
        model_version="7",
        labels=("Benign", "Pre"),
        started_at=time.time(),
        beat_at=time.time(),
    )


def test_a_published_record_reads_back_identically(client: redis.Redis[bytes]) -> None:
    record = _record("nano-1@nano-1")
    publish(client, record)
    assert online(client, "fleet") == [record]


def test_only_workers_of_the_asked_queue_are_listed(client: redis.Redis[bytes]) -> None:
    publish(client, _record("a@h", queue="fleet"))
    publish(client, _record("b@h", queue="fleet:other"))
    publish(client, _record("c@h", queue="fle?t"))
    client.set(presence_key("fleet", "junk@h"), b"not json")
    assert [r.node for r in online(client, "fleet")] == ["a@h"]
    assert [r.node for r in online(client, "fle?t")] == ["c@h"]


def test_a_record_expires_when_the_worker_stops_beating(client: redis.Redis[bytes]) -> None:
    publish(client, _record("gone@h"), ttl=1)
    assert len(online(client, "fleet")) == 1
    time.sleep(1.5)
    assert online(client, "fleet") == []


def test_a_withdrawn_record_leaves_the_listing_at_once(client: redis.Redis[bytes]) -> None:
    publish(client, _record("x@h"))
    withdraw(client, "fleet", "x@h")
    assert online(client, "fleet") == []
