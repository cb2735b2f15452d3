"""Preparing images ahead of the model: order, errors and a bounded look-ahead."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from allscreen.defaults import DEFAULT_PREFETCH
from allscreen.errors import ImageRejected
from worker.prefetch import (
    POOL_PROCESSES_ENV,
    decode_ahead,
    decode_threads,
    pool_processes,
    prepared,
    shared_pool,
    usable_cores,
)


def test_items_come_back_in_order_with_their_values() -> None:
    with ThreadPoolExecutor(1) as pool:
        out = [(p.item, p.value) for p in prepared(range(10), lambda i: i * i, pool=pool)]
    assert out == [(i, i * i) for i in range(10)]


def test_a_rejected_image_becomes_an_error_and_the_rest_go_on() -> None:
    def prepare(i: int) -> int:
        if i == 2:
            raise ImageRejected("truncated JPEG")
        return i

    with ThreadPoolExecutor(1) as pool:
        out = list(prepared(range(4), prepare, pool=pool))
    assert [p.error for p in out] == [None, None, "truncated JPEG", None]
    assert [p.value for p in out] == [0, 1, None, 3]
    assert all(p.prepare_ms >= 0 for p in out)


def test_an_unexpected_error_is_not_swallowed() -> None:
    def prepare(i: int) -> int:
        raise RuntimeError("bug")

    with ThreadPoolExecutor(1) as pool, pytest.raises(RuntimeError, match="bug"):
        list(prepared(range(3), prepare, pool=pool))


def test_no_more_than_the_look_ahead_is_prepared_before_the_first_is_taken() -> None:
    started: list[int] = []

    def prepare(i: int) -> int:
        started.append(i)
        return i

    with ThreadPoolExecutor(1) as pool:
        gen = prepared(range(100), prepare, pool=pool, ahead=3)
        first = next(gen)
        pool.submit(lambda: None).result()  # let queued work drain
        assert first.item == 0
        assert len(started) <= 4  # three ahead, plus the one queued when the first was taken
        assert [p.item for p in gen] == list(range(1, 100))


def test_with_no_look_ahead_each_item_is_prepared_inline_just_before_it_is_yielded() -> None:
    threads: list[str] = []
    started: list[int] = []

    def prepare(i: int) -> int:
        threads.append(threading.current_thread().name)
        started.append(i)
        return -i if i != 1 else _reject()

    def _reject() -> int:
        raise ImageRejected("not an image")

    gen = prepared(range(3), prepare, ahead=0)
    first = next(gen)
    assert (first.item, first.value) == (0, 0) and started == [0]  # nothing prepared ahead
    rest = list(gen)
    assert [(p.item, p.value, p.error) for p in rest] == [(1, None, "not an image"), (2, -2, None)]
    assert set(threads) == {threading.current_thread().name}  # all in the caller's thread


def test_decode_threads_default_to_the_cores_this_process_may_use() -> None:
    assert decode_threads(None) == len(os.sched_getaffinity(0))
    assert decode_threads(3) == 3


def test_several_decode_threads_prepare_images_at_the_same_time_and_keep_the_order() -> None:
    together = threading.Barrier(2, timeout=10)  # broken unless two run at once

    def prepare(i: int) -> int:
        if i < 2:
            together.wait()
        return i

    pool = shared_pool(2)
    assert shared_pool(2) is pool  # one pool per process, kept while the number holds
    out = [p.value for p in prepared(range(6), prepare, pool=pool, ahead=2)]
    assert out == list(range(6))
    assert len({t.name for t in threading.enumerate() if "allscreen-prepare" in t.name}) >= 2


def test_a_configured_look_ahead_decides_and_covers_every_decode_thread() -> None:
    assert decode_ahead(0, threads=4, processes=1) == 0
    assert decode_ahead(3, threads=2, processes=64) == 3
    assert decode_ahead(1, threads=4, processes=64) == 4


def test_unset_a_worker_decodes_ahead_only_where_its_processes_leave_a_core_free() -> None:
    cores = usable_cores()
    assert decode_ahead(None, threads=1, processes=cores) == 0  # every core has a process
    assert decode_ahead(None, threads=1, processes=cores + 1) == 0
    assert decode_ahead(None, threads=1, processes=None) == DEFAULT_PREFETCH  # not announced
    if cores > 1:
        assert decode_ahead(None, threads=cores, processes=cores - 1) == max(
            DEFAULT_PREFETCH, cores
        )


def test_pool_processes_are_read_from_what_the_worker_command_announced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(POOL_PROCESSES_ENV, "3")
    assert pool_processes() == 3
    for bad in ("", "0", "x", "-1"):
        monkeypatch.setenv(POOL_PROCESSES_ENV, bad)
        assert pool_processes() is None


@pytest.mark.parametrize(
    ("pool", "processes"),
    [("prefork", 3), ("solo", 1), ("threads", 1)],
)
def test_the_worker_announces_its_pool_processes_before_they_start(
    monkeypatch: pytest.MonkeyPatch, pool: str, processes: int
) -> None:
    from types import SimpleNamespace

    from celery.concurrency import get_implementation
    from celery.signals import celeryd_after_setup

    monkeypatch.setenv(POOL_PROCESSES_ENV, "")  # restored (unset) after the test
    instance = SimpleNamespace(pool_cls=get_implementation(pool), concurrency=3)
    celeryd_after_setup.send(sender="dev@host", instance=instance, conf=None)
    assert pool_processes() == processes
