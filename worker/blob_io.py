"""Image bytes in Redis off a batch's critical path, on one background thread per process.

On a device far from Redis every round trip the batch waits for is time its model sits idle:
at 20 ms a round trip, the fetch of a batch's images and the delete of the previous batch's
keys cost 40 ms a batch. Here the fetch starts while SQL counts the delivery, and the delete
(issued only once the batch's rows are committed) runs while the next batch begins. One thread
keeps them in order: a batch's fetch never overtakes the delete issued before it.

A delete that fails, or that the process dies before sending, only leaves keys that expire
on their own (`allscreen.defaults.DEFAULT_BLOB_TTL`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from allscreen.blobs import BlobStore
from allscreen.messages import Batch

log = logging.getLogger(__name__)

_thread: ThreadPoolExecutor | None = None


def _io() -> ThreadPoolExecutor:
    """The process's Redis thread, created on first use (never before a fork)."""
    global _thread
    if _thread is None:
        _thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="allscreen-blobs")
    return _thread


def _forget_inherited_thread() -> None:
    # A forked child has no copy of its parent's threads: it starts its own on first use.
    global _thread
    _thread = None


os.register_at_fork(after_in_child=_forget_inherited_thread)


def fetch_ahead(batch: Batch, blobs: BlobStore | None) -> Future[dict[str, bytes | None]] | None:
    """Start fetching (one MGET) every image of `batch` that waits in Redis; the future holds
    each key's bytes, None where a key is gone. None: nothing to fetch.

    All of them, done or not: the fetch overlaps with `begin_batch`, which says which are done.
    """
    keys = [i.blob for i in batch.images if i.blob is not None]
    if not keys or blobs is None:
        return None
    return _io().submit(lambda: dict(zip(keys, blobs.get(keys), strict=True)))


def _delete(blobs: BlobStore, keys: list[str]) -> None:
    try:
        blobs.delete(keys)
    except Exception as exc:  # keys expire on their own; the batch is done
        log.warning("could not delete %d image keys (they expire on their own): %s", len(keys), exc)


def delete_later(blobs: BlobStore, keys: Sequence[str]) -> None:
    """Delete `keys` in the background: call only once their results are committed."""
    if keys:
        _io().submit(_delete, blobs, list(keys))


def settle(timeout: float = 10.0) -> None:
    """Wait (up to `timeout` s) for the fetches and deletes already started: at shutdown."""
    if _thread is None:
        return
    try:
        _thread.submit(lambda: None).result(timeout=timeout)
    except TimeoutError:
        log.warning("image keys still being deleted after %g s; they expire on their own", timeout)
