"""Preparing the next images while the model classifies the current one.

The model runs in its own process (on a Jetson, on the GPU), so while the worker waits for a
reply its CPU is idle. Background threads, one per core of the device unless
`ALLSCREEN_DECODE_THREADS` says otherwise, decode and compute features a few images ahead;
OpenCV and socket waits release the GIL, so they overlap with each other and with inference.
On a device whose model takes 13 ms an image, this hides decoding (about 1 ms for a small
JPEG, tens of ms for a megapixel field on a Nano's cores) behind inference instead of adding it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from celery.signals import celeryd_after_setup

from allscreen.defaults import DEFAULT_PREFETCH
from allscreen.errors import ImageRejected

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_AHEAD = 2  #: images prepared ahead: enough to cover one model call, little memory

_pool: ThreadPoolExecutor | None = None
_pool_threads = 0


#: Set by the worker's main process for its pool processes: how many of them share the device.
POOL_PROCESSES_ENV = "ALLSCREEN_INTERNAL_POOL_PROCESSES"

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def decode_threads(configured: int | None) -> int:
    """Threads to prepare images with: `configured`, else one per core this process may use."""
    return configured or usable_cores()


def pool_size(pool_cls: object, concurrency: int) -> int:
    """Processes that run tasks in a worker with this pool: prefork's concurrency, else one."""
    from celery.concurrency.prefork import TaskPool as PreforkPool

    if isinstance(pool_cls, type) and issubclass(pool_cls, PreforkPool):
        return int(concurrency)
    return 1


@celeryd_after_setup.connect  # type: ignore[untyped-decorator]
def announce_pool(sender: str, instance: Any, **_: Any) -> None:
    """Tell the pool processes, before they start, how many of them share the device.

    Celery sends this once its pool class and concurrency are resolved, whichever command
    started it (`allscreen worker` or `celery -A worker.app worker`).
    """
    processes = pool_size(instance.pool_cls, instance.concurrency)
    os.environ[POOL_PROCESSES_ENV] = str(processes)
    log.info("%s: %d pool process(es) on %d core(s)", sender, processes, usable_cores())


def pool_processes() -> int | None:
    """The worker's pool processes, as its main process announced them (None: unknown)."""
    raw = os.environ.get(POOL_PROCESSES_ENV, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


def decode_ahead(configured: int | None, threads: int, processes: int | None) -> int:
    """Images to prepare ahead of the model: 0 decodes inline.

    `configured` (`ALLSCREEN_PREFETCH`) decides when set. Unset, a worker decodes ahead only
    where its `processes` leave a core free: where every core already runs a pool process
    or its model, background threads add hand-offs and no overlap (BENCHMARKS.md, section 2),
    while a device whose model has its own silicon or a spare core hides decoding behind
    inference. Each decode thread needs an image of its own ahead.
    """
    if configured is None:
        if processes is not None and processes >= usable_cores():
            return 0
        configured = DEFAULT_PREFETCH
    return max(configured, threads) if configured > 0 else 0


def shared_pool(threads: int = 1) -> ThreadPoolExecutor:
    """This process's preparation threads, created on first use (never before a fork), and
    again if the number asked for changes."""
    global _pool, _pool_threads
    if _pool is None or _pool_threads != threads:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="allscreen-prepare")
        _pool_threads = threads
    return _pool


@dataclass(frozen=True, slots=True)
class Prepared(Generic[T, R]):
    """An item with its prepared value, or the reason it could not be prepared."""

    item: T
    value: R | None
    error: str | None
    started_at: datetime
    prepare_ms: float


def _run(item: T, prepare: Callable[[T], R]) -> Prepared[T, R]:
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        value, error = prepare(item), None
    except ImageRejected as exc:
        value, error = None, str(exc)
    return Prepared(item, value, error, started, (time.perf_counter() - t0) * 1000)


def prepared(
    items: Iterable[T],
    prepare: Callable[[T], R],
    *,
    pool: ThreadPoolExecutor | None = None,
    ahead: int = DEFAULT_AHEAD,
) -> Iterator[Prepared[T, R]]:
    """Yield `prepare(item)` for each item in order, computing up to `ahead` items in advance.

    ImageRejected from `prepare` becomes `error`; any other exception propagates. With
    `ahead` 0, each item is prepared inline, in the caller's thread, just before it is yielded.
    """
    if ahead <= 0:
        for item in items:
            yield _run(item, prepare)
        return
    pool = pool or shared_pool()
    pending: deque[Future[Prepared[T, R]]] = deque()
    it = iter(items)
    for item in it:
        pending.append(pool.submit(_run, item, prepare))
        if len(pending) >= ahead:
            break
    while pending:
        done = pending.popleft()
        nxt = next(it, None)
        if nxt is not None:
            pending.append(pool.submit(_run, nxt, prepare))
        yield done.result()
