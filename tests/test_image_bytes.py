"""Image bytes wait in Redis beside the batch messages, which carry only their keys."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import redis
from sqlalchemy import Engine, select

from allscreen.db import make_engine
from allscreen.schema import STATUS_DONE, Result
from allscreen.settings import Settings
from producer.submit import submit, watch
from tests.support.queue import queued_batches
from tests.support.workers import workers


def _client(settings: Settings) -> redis.Redis[bytes]:
    assert settings.broker_url is not None
    return redis.Redis.from_url(settings.broker_url)


def _blob_keys(client: redis.Redis[bytes], settings: Settings) -> list[bytes]:
    return list(client.scan_iter(match=f"allscreen:blob:{settings.queue}:*", count=1000))


def test_messages_name_redis_keys_that_hold_each_image_and_workers_delete_them(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    client = _client(settings)
    done = submit([archive], settings, run_name="blobs", err=io.StringIO())
    by_sha = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in archive.rglob("*.*")}
    images = [img for batch in queued_batches(client, settings.queue) for img in batch["images"]]
    assert len(images) == done.registered.new > 0
    for img in images:
        assert set(img) == {"id", "sha256", "blob"}  # no bytes and no path in the message
        data = client.get(img["blob"])
        assert data is not None and hashlib.sha256(data).hexdigest() == img["sha256"]
        assert data == by_sha[img["sha256"]].read_bytes()
    # A message is a few dozen bytes per image, not the image itself.
    largest = max(len(raw) for raw in client.lrange(settings.queue, 0, -1))
    assert largest < 4096 < min(len(client.get(i["blob"]) or b"") for i in images)
    with workers(settings, tmp_path, "dev"):
        _, counts, _ = watch("blobs", settings, err=io.StringIO())
    assert counts.done == counts.total == len(images)
    assert _blob_keys(client, settings) == []


def test_an_image_whose_bytes_vanished_stays_pending_and_is_sent_again(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    client = _client(settings)
    submit([archive], settings, run_name="lost", err=io.StringIO())
    first = queued_batches(client, settings.queue)[0]["images"][0]
    assert client.delete(first["blob"]) == 1  # as if it expired
    with workers(settings, tmp_path, "dev") as (worker,):
        _, counts, _ = watch("lost", settings, err=io.StringIO())
        log = worker.text()
    assert f"image {first['id']}: its bytes are no longer in Redis" in log
    assert "Traceback" not in log
    # `watch` saw the idle broker with a pending image and sent it again: nothing was lost.
    assert counts.done == counts.total and counts.failed == 0
    with make_engine(settings.database_url).connect() as conn:
        status = conn.scalar(select(Result.status).where(Result.image_id == first["id"]))
    assert status == STATUS_DONE
    assert _blob_keys(client, settings) == []
