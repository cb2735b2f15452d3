"""Image bytes beside the batch messages: one Redis key per queued image.

A batch message names its images' keys instead of carrying their bytes. kombu's Redis
transport decodes every delivered message and copies it into its `unacked` hash (so it can
redeliver it), and a prefork worker pipes it to the child: with the bytes inside, that was a
third of a worker's time (BENCHMARKS.md, section 2). The producer writes the keys before it
publishes the batch; the worker reads them with one MGET and deletes them once the batch's
results are committed. Redis holds the same bytes as before, without base64's third.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from allscreen import defaults

_PREFIX = "allscreen:blob"


def blob_key(queue: str, run_id: int, image_id: int) -> str:
    """The Redis key of one queued image's bytes."""
    return f"{_PREFIX}:{queue}:{run_id}:{image_id}"


class BlobStore:
    """Puts, gets and deletes image bytes on a redis-py client (the broker's own Redis)."""

    def __init__(self, client: Any, *, ttl: float = defaults.DEFAULT_BLOB_TTL) -> None:
        self._client = client
        self._ttl_ms = max(1, int(ttl * 1000))

    def put(self, blobs: Sequence[tuple[str, bytes]]) -> None:
        """Store every (key, bytes) pair in one round trip."""
        if not blobs:
            return
        pipe = self._client.pipeline(transaction=False)
        for key, data in blobs:
            pipe.set(key, data, px=self._ttl_ms)
        pipe.execute()

    def get(self, keys: Sequence[str]) -> list[bytes | None]:
        """The bytes under each key, None where a key is gone; one round trip."""
        if not keys:
            return []
        return list(self._client.mget(keys))

    def delete(self, keys: Sequence[str]) -> None:
        """Drop the keys (missing ones are ignored)."""
        if keys:
            self._client.unlink(*keys)
