"""Streaming an archive into the broker: a window that never overflows, a cursor that never
repeats an image, and devices that start while the scan is still going (real Redis and SQL)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

import producer.register
import producer.sending
from allscreen.db import ensure_schema
from allscreen.settings import Settings
from producer.archive import Found, scan
from producer.enqueue import Enqueuer, Publisher
from producer.live import LiveProducers
from producer.register import get_or_create_run, register
from producer.submit import _celery_app, resume, submit
from tests.support.queue import queued_batches


def _files(folder: Path, n: int, start: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        (folder / f"img-{i:03d}.png").write_bytes(b"distinct content %d" % i)
    return folder


def _ids(client: redis.Redis[bytes], queue: str) -> list[int]:
    return [img["id"] for batch in queued_batches(client, queue) for img in batch["images"]]


def test_pumping_without_blocking_stops_at_a_full_window_and_resumes_without_repeats(
    settings: Settings, engine: Engine, tmp_path: Path, client: redis.Redis[bytes]
) -> None:
    ensure_schema(engine, create=True)
    settings = settings.model_copy(update={"batch_size": 4, "max_queued_batches": 2})
    run_id, _ = get_or_create_run(engine, "stream", pin=None)
    register(engine, run_id, scan([os.fsencode(_files(tmp_path / "a", 20))], "none"))
    taken: list[int] = []

    def device_takes_all() -> None:  # called while the producer waits for room
        taken.extend(_ids(client, settings.queue))
        client.delete(settings.queue)

    with Publisher(_celery_app(settings), settings) as pub:
        enq = Enqueuer(
            engine, pub, run_id, settings, pin=None, only_new=True, idle=device_takes_all
        )
        enq.pump(block=False)
        first = _ids(client, settings.queue)
        assert len(first) == 8 and client.llen(settings.queue) == 2  # the window, no more
        enq.pump(block=False)  # still full: nothing more is sent
        assert _ids(client, settings.queue) == first
        client.delete(settings.queue)  # devices took both batches
        enq.pump(block=False)
        second = _ids(client, settings.queue)
        client.delete(settings.queue)
        # Images registered later (a scan still going) follow on from the cursor.
        register(engine, run_id, scan([os.fsencode(_files(tmp_path / "b", 10, 20))], "none"))
        enq.pump(block=True)  # waits for room, and sends the last, partial batch too
        rest = taken + _ids(client, settings.queue)
    sent = first + second + rest
    assert len(sent) == len(set(sent)) == 30  # every image exactly once
    assert sent == sorted(sent)
    assert enq.stats.images == 30 and enq.stats.batches == 8


def test_submit_sends_the_first_batches_while_the_archive_is_still_being_scanned(
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    client: redis.Redis[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = _files(tmp_path / "big", 40)
    settings = settings.model_copy(update={"batch_size": 4, "max_queued_batches": 100})
    monkeypatch.setattr(producer.register, "_CHUNK", 8)  # register in chunks of 8 rows
    seen_while_scanning: list[int] = []

    def watching_scan(paths: list[bytes], labels: str) -> Iterator[Found]:
        for found in scan(paths, "none"):
            seen_while_scanning.append(int(client.llen(settings.queue)))
            yield found

    monkeypatch.setattr(producer.sending, "scan", watching_scan)
    done = submit([folder], settings, run_name="early", err=io.StringIO())
    assert done.registered.new == 40 and done.enqueued.images == 40
    # Batches were already waiting before the scan reached the last files.
    assert seen_while_scanning[0] == 0 and seen_while_scanning[-1] >= 2
    sent = _ids(client, settings.queue)
    assert len(sent) == len(set(sent)) == 40


def test_a_run_starts_and_ends_in_smaller_batches_so_devices_start_and_finish_together(
    settings: Settings, engine: Engine, tmp_path: Path, client: redis.Redis[bytes]
) -> None:
    ensure_schema(engine, create=True)
    settings = settings.model_copy(update={"batch_size": 16, "max_queued_batches": 4})
    run_id, _ = get_or_create_run(engine, "tail", pin=None)
    register(engine, run_id, scan([os.fsencode(_files(tmp_path / "t", 100))], "none"))
    sizes: list[int] = []

    def devices_take_all() -> None:
        sizes.extend(len(b["images"]) for b in queued_batches(client, settings.queue))
        client.delete(settings.queue)

    with Publisher(_celery_app(settings), settings) as pub:
        Enqueuer(
            engine, pub, run_id, settings, pin=None, only_new=True, idle=devices_take_all
        ).pump(block=True)
        devices_take_all()
    assert sum(sizes) == 100
    assert sizes[:4] == [4, 8, 16, 16]  # doubling up to the batch size
    tail = sizes[3:]
    assert tail == sorted(tail, reverse=True)  # then each takes a share of what is left
    assert len(tail) > 6 and tail[-3:] == [4, 4, 4] == [min(sizes)] * 3  # down to the floor


def test_resume_beside_a_live_producer_sends_only_images_never_sent(
    settings: Settings, engine: Engine, tmp_path: Path, client: redis.Redis[bytes]
) -> None:
    settings = settings.model_copy(update={"max_queued_batches": 100})
    submit([_files(tmp_path / "a", 8)], settings, run_name="shared", err=io.StringIO())
    sent_first = set(_ids(client, settings.queue))
    run_id, _ = get_or_create_run(engine, "shared", pin=None)
    register(engine, run_id, scan([os.fsencode(_files(tmp_path / "b", 4, start=8))], "none"))
    client.delete(settings.queue)  # the queue is gone, and another producer is at work
    other = LiveProducers(client, settings.queue, run_id)
    other.enter()
    try:
        err = io.StringIO()
        resume("shared", settings, err=err)
    finally:
        other.leave()
    beside = _ids(client, settings.queue)
    assert len(beside) == 4 and not set(beside) & sent_first  # only the 4 never sent
    assert "1 other producer(s) are sending to this run" in err.getvalue()
    client.delete(settings.queue)
    resume("shared", settings, err=io.StringIO())  # alone now: every pending image again
    assert sorted(_ids(client, settings.queue)) == sorted(sent_first | set(beside))
