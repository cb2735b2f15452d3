"""Image bytes fetched and deleted off the batch's critical path, on a real Redis."""

from __future__ import annotations

import redis

from allscreen.blobs import BlobStore, blob_key
from allscreen.messages import Batch, ImageItem
from worker import blob_io
from worker.batch import drop_blobs


def _batch(keys: list[str | None]) -> Batch:
    return Batch(1, 0.0, tuple(ImageItem(i, "0" * 64, blob=k) for i, k in enumerate(keys)))


def test_a_batch_fetched_ahead_gets_each_images_bytes_and_none_for_a_vanished_one(
    broker_url: str,
) -> None:
    client: redis.Redis[bytes] = redis.Redis.from_url(broker_url)
    blobs = BlobStore(client)
    kept, gone = blob_key("q", 1, 1), blob_key("q", 1, 2)
    blobs.put([(kept, b"bytes")])
    fetched = blob_io.fetch_ahead(_batch([kept, gone, None]), blobs)
    assert fetched is not None
    assert fetched.result(timeout=10) == {kept: b"bytes", gone: None}
    assert blob_io.fetch_ahead(_batch([None]), blobs) is None  # nothing in Redis: no trip
    client.close()


def test_a_batchs_keys_are_deleted_in_the_background_and_gone_once_settled(
    broker_url: str,
) -> None:
    client: redis.Redis[bytes] = redis.Redis.from_url(broker_url)
    blobs = BlobStore(client)
    keys = [blob_key("q", 1, i) for i in range(3)]
    blobs.put([(k, b"x") for k in keys])
    drop_blobs(_batch([*keys, None]), blobs)
    blob_io.settle()
    assert client.exists(*keys) == 0
    # A later batch's fetch runs after the delete issued before it: it never sees those bytes.
    blobs.put([(keys[0], b"y")])
    drop_blobs(_batch([keys[0]]), blobs)
    fetched = blob_io.fetch_ahead(_batch([keys[0]]), blobs)
    assert fetched is not None and fetched.result(timeout=10) == {keys[0]: None}
    client.close()
