"""Each file is read and hashed once: the bytes hashed at registration are the bytes sent,
within a bounded memory budget (real Redis and SQL)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

import producer.enqueue
import producer.submit
from allscreen.db import ensure_schema
from allscreen.files import read_capped
from allscreen.settings import Settings
from producer.archive import scan
from producer.enqueue import Enqueuer, Publisher
from producer.recent import ENTRY_OVERHEAD, RecentBytes
from producer.register import get_or_create_run, register
from producer.submit import _celery_app, submit
from tests.support.queue import queued_batches


def _files(folder: Path, n: int) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(n):
        data = b"image content %03d" % i
        (folder / f"img-{i:03d}.png").write_bytes(data)
        out[hashlib.sha256(data).hexdigest()] = data
    return out


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every file the enqueuer reads (it reads only what registration did not keep)."""
    seen: list[bytes] = []

    def spy(path: str | bytes, max_bytes: int) -> bytes:
        seen.append(os.fsencode(path))
        return read_capped(path, max_bytes)

    monkeypatch.setattr(producer.enqueue, "read_capped", spy)
    return seen


def _sent(client: redis.Redis[bytes], queue: str) -> dict[str, bytes | None]:
    """sha256 → the bytes waiting in Redis for each queued image."""
    items = [img for batch in queued_batches(client, queue) for img in batch["images"]]
    return {img["sha256"]: client.get(img["blob"]) for img in items}


def test_submit_sends_the_bytes_it_hashed_without_reading_any_file_twice(
    settings: Settings, tmp_path: Path, client: redis.Redis[bytes], reads: list[bytes]
) -> None:
    files = _files(tmp_path / "a", 30)
    settings = settings.model_copy(update={"max_queued_batches": 100})
    done = submit([tmp_path / "a"], settings, run_name="once", err=io.StringIO())
    assert done.enqueued.images == 30 and done.enqueued.failed == 0
    assert reads == []  # the enqueuer read nothing: every file was read once, to hash it
    assert _sent(client, settings.queue) == files


def test_a_file_changed_after_registration_still_goes_out_as_registered(
    settings: Settings, engine: Engine, tmp_path: Path, client: redis.Redis[bytes]
) -> None:
    ensure_schema(engine, create=True)
    files = _files(tmp_path / "c", 3)
    run_id, _ = get_or_create_run(engine, "changed", pin=None)
    recent = RecentBytes()
    register(engine, run_id, scan([os.fsencode(tmp_path / "c")], "none"), keep=recent)
    (tmp_path / "c" / "img-001.png").write_bytes(b"overwritten after registration")
    with Publisher(_celery_app(settings), settings) as pub:
        enq = Enqueuer(engine, pub, run_id, settings, pin=None, only_new=True, recent=recent)
        enq.pump(block=True)
    # The content that was hashed, not the new one; its sha256 matches what SQL holds.
    assert _sent(client, settings.queue) == files and enq.stats.failed == 0
    assert recent.size == 0  # every kept file was taken


def test_past_the_budget_files_are_read_again_and_verified(
    settings: Settings,
    tmp_path: Path,
    client: redis.Redis[bytes],
    reads: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = _files(tmp_path / "b", 20)  # 17 bytes each
    budget = (17 + ENTRY_OVERHEAD) * 5
    monkeypatch.setattr(producer.submit, "RecentBytes", lambda: RecentBytes(budget))
    settings = settings.model_copy(update={"max_queued_batches": 100})
    done = submit([tmp_path / "b"], settings, run_name="budget", err=io.StringIO())
    assert done.enqueued.images == 20 and done.enqueued.failed == 0
    assert len(reads) == 15 == len(set(reads))  # the 5 the budget held were not read again
    assert _sent(client, settings.queue) == files


def test_recent_bytes_hold_at_most_the_budget_and_give_each_file_once() -> None:
    recent = RecentBytes(budget=2 * ENTRY_OVERHEAD + 10)
    recent.keep("a", b"123456")
    recent.keep("b", b"12345")  # would exceed the budget: not kept
    recent.keep("a", b"123456")  # already held: counted once
    assert recent.size == ENTRY_OVERHEAD + 6
    assert recent.take("b") is None
    assert recent.take("a") == b"123456" and recent.take("a") is None
    recent.keep("b", b"12345")
    assert recent.size == ENTRY_OVERHEAD + 5
    recent.clear()
    assert recent.size == 0 and recent.take("b") is None
