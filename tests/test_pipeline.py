"""End to end: real Redis, SQLite and PostgreSQL, real worker processes, the real `.eim` runner."""

from __future__ import annotations

import io
from pathlib import Path

from sqlalchemy import Engine, select

from allscreen.db import make_engine
from allscreen.schema import STATUS_DONE, Image, Result
from allscreen.settings import Settings
from producer.submit import submit, watch
from tests.support.queue import queued_batches
from tests.support.workers import workers


def test_a_submitted_folder_gets_one_done_row_per_image_from_two_devices(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    with workers(settings, tmp_path, "dev-a", "dev-b"):
        done = submit([archive], settings, run_name="e2e", labels="folder", err=io.StringIO())
        _, counts, _ = watch("e2e", settings, err=io.StringIO())
    files = sorted(p for p in archive.rglob("*") if p.is_file())
    assert counts.total == done.registered.new == len({p.read_bytes() for p in files})
    assert counts.done == counts.total and counts.failed == 0
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Result, Image.ground_truth).join(Image, Image.id == Result.image_id)
        ).all()
    assert len(rows) == counts.total
    assert len({r.image_id for r in rows}) == len(rows)
    assert {r.device for r in rows} == {"dev-a", "dev-b"}
    for r in rows:
        assert r.status == STATUS_DONE
        assert r.label in {"Benign", "Early", "Pre", "Pro"}
        assert r.queued_at <= r.started_at <= r.finished_at
        assert r.decode_ms is not None and r.decode_ms > 0
        assert r.inference_ms is not None and r.inference_ms > 0
        assert r.model_sha256 is not None and len(r.model_sha256) == 64
        assert r.model_name and r.model_version


def test_resubmitting_a_finished_folder_enqueues_nothing(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    with workers(settings, tmp_path, "dev-a"):
        first = submit([archive], settings, run_name="again", err=io.StringIO())
        watch("again", settings, err=io.StringIO())
        second = submit([archive], settings, run_name="again", err=io.StringIO())
    assert first.enqueued.images == first.registered.new > 0
    assert second.registered.new == 0
    assert second.enqueued.images == 0 and second.enqueued.batches == 0
    with make_engine(settings.database_url).connect() as conn:
        assert len(conn.execute(select(Result.id)).all()) == first.registered.new


def test_the_path_transport_sends_paths_on_a_shared_mount_instead_of_bytes(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    import redis as redis_lib

    settings = settings.model_copy(update={"transport": "path"})
    submit([archive], settings, run_name="paths", err=io.StringIO())
    assert settings.broker_url is not None
    client = redis_lib.Redis.from_url(settings.broker_url)
    batches = queued_batches(client, settings.queue)
    images = [img for batch in batches for img in batch["images"]]
    assert images and all("data" not in img for img in images)  # paths travel, not bytes
    assert all(img["path"].startswith(str(archive)) for img in images)
    with workers(settings, tmp_path, "dev"):
        _, counts, _ = watch("paths", settings, err=io.StringIO())
    assert counts.done == counts.total > 0


def test_a_plain_celery_worker_command_works_too(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    import os
    import subprocess
    import sys

    from allscreen.settings import settings_env

    env = {**os.environ, **settings_env(settings), "ALLSCREEN_DEVICE": "plain"}
    log = (tmp_path / "celery.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.app",
            "worker",
            "-Q",
            settings.queue,
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        submit([archive], settings, run_name="plain", err=io.StringIO())
        _, counts, _ = watch("plain", settings, err=io.StringIO())
    finally:
        proc.terminate()
        proc.wait(30)
    assert counts.done == counts.total > 0
    # Its one solo process learnt that it has the device to itself (worker.prefetch).
    assert "1 pool process(es)" in (tmp_path / "celery.log").read_text()
