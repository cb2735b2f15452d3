"""Nothing lost, nothing counted twice: break things on purpose with real processes.

Each test ends with the same check: every image has exactly one result row.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from allscreen.db import ensure_schema, make_engine
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.settings import Settings, settings_env
from producer.submit import submit, watch
from tests.support.proxy import CuttableProxy
from tests.support.runs import outcomes, pool_processes, result_count, wait_until
from tests.support.workers import WorkerProcess, workers

pytestmark = pytest.mark.slow  #: the long fault scenarios: CI runs them; `-m 'not slow'` skips

REPO = Path(__file__).resolve().parent.parent
SLOW = {"ALLSCREEN_EIM_DELAY_MS": "60"}  #: slows each inference so a kill lands mid-batch


def _all_done(settings: Settings, n: int | None = None) -> None:
    got = outcomes(settings)
    assert all(status == "done" for status, _ in got.values()), got
    if n is not None:
        assert len(got) == n


def test_a_pool_process_killed_mid_batch_loses_no_image(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    with workers(settings, tmp_path, "dev", concurrency=2, extra_env=SLOW) as (w,):
        submit([archive], settings, run_name="kill-child", err=io.StringIO())
        wait_until(lambda: result_count(settings) >= 4, 60, "the first batch")
        pool = pool_processes(w.proc.pid)
        assert len(pool) == 2, "expected two pool processes"
        for pid in pool:  # both are busy: the queue still holds batches
            os.kill(pid, signal.SIGKILL)
        watch("kill-child", settings, err=io.StringIO())
        assert "WorkerLostError" in w.text()
    _all_done(settings)


def test_a_whole_worker_killed_mid_run_is_finished_by_another(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    settings = settings.model_copy(update={"visibility_timeout": 4.0})
    a = WorkerProcess(settings, "doomed", tmp_path / "a.log", concurrency=2, extra_env=SLOW)
    try:
        a.wait_ready()
        submit([archive], settings, run_name="kill-worker", err=io.StringIO())
        wait_until(lambda: result_count(settings) >= 4, 60, "the first batch")
        a.kill(signal.SIGKILL)
    finally:
        a.stop()
    assert result_count(settings) < len(outcomes_paths(archive))
    with workers(settings, tmp_path, "rescuer"):
        watch("kill-worker", settings, err=io.StringIO())
    _all_done(settings)


def outcomes_paths(archive: Path) -> set[bytes]:
    """Distinct image contents in an archive."""
    return {p.read_bytes() for p in archive.rglob("*") if p.is_file()}


def test_a_redis_restart_that_loses_the_queue_is_recovered_automatically(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    redis = EmbeddedRedis().start()
    settings = settings.model_copy(update={"broker_url": redis.url, "max_queued_batches": 100})
    try:
        with workers(settings, tmp_path, "dev", extra_env=SLOW):
            submit([archive], settings, run_name="redis-restart", err=io.StringIO())
            wait_until(lambda: result_count(settings) >= 4, 60, "the first batch")
            redis.stop()  # keeps nothing on disk: the queue is gone
            time.sleep(1)
            redis = EmbeddedRedis(port=redis.port).start()
            err = io.StringIO()
            watch("redis-restart", settings, err=err)
        assert "re-enqueued" in err.getvalue()
    finally:
        redis.stop()
    _all_done(settings)


def test_a_database_outage_of_twenty_seconds_is_ridden_out(
    broker_url: str, pg_url: str, archive: Path, tmp_path: Path
) -> None:
    settings = Settings(
        broker_url=broker_url,
        database_url=pg_url,
        batch_size=4,
        queue=f"allscreen-t-{uuid.uuid4().hex[:8]}",
    )
    ensure_schema(make_engine(pg_url), create=True)
    url = make_url(pg_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432).start()
    via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    worker_settings = settings.model_copy(update={"database_url": via_proxy})
    try:
        with workers(worker_settings, tmp_path, "dev", extra_env=SLOW) as (w,):
            submit([archive], settings, run_name="db-outage", err=io.StringIO())
            wait_until(lambda: result_count(settings) >= 4, 60, "the first batch")
            proxy.cut()
            time.sleep(20)
            assert result_count(settings) < len(outcomes_paths(archive))
            proxy.restore()
            watch("db-outage", settings, err=io.StringIO())
            assert "database unavailable, retrying" in w.text()
    finally:
        proxy.stop()
    _all_done(settings)


def _poison(folder: Path) -> Path:
    img = np.zeros((224, 224, 3), dtype=np.uint8)
    img[..., 0] = 255  # BGR: blue and red make magenta
    img[..., 2] = 255
    path = folder / "poison.png"
    cv2.imwrite(str(path), img)
    return path


def test_a_model_that_hangs_on_one_image_fails_only_that_image(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    _poison(archive / "Benign")
    settings = settings.model_copy(
        update={
            "model": REPO / "tests" / "support" / "faulty.eim",
            "model_timeout": 2.0,
            "model_attempts": 2,
        }
    )
    env = {"ALLSCREEN_EIM_FAULT": "hang", "ALLSCREEN_EIM_PYTHON": sys.executable}
    with workers(settings, tmp_path, "dev", extra_env=env):
        submit([archive], settings, run_name="hang", err=io.StringIO())
        watch("hang", settings, err=io.StringIO())
    got = outcomes(settings)
    status, error = got["Benign/poison.png"]
    assert status == "failed" and error is not None
    assert "model hung" in error and "gave up after 2 attempts" in error
    assert all(s == "done" for p, (s, _) in got.items() if p != "Benign/poison.png")


def test_a_model_that_dies_on_one_image_fails_only_that_image(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    _poison(archive / "Pro")
    settings = settings.model_copy(
        update={"model": REPO / "tests" / "support" / "faulty.eim", "model_attempts": 2}
    )
    env = {"ALLSCREEN_EIM_FAULT": "crash", "ALLSCREEN_EIM_PYTHON": sys.executable}
    with workers(settings, tmp_path, "dev", extra_env=env):
        submit([archive], settings, run_name="crash", err=io.StringIO())
        watch("crash", settings, err=io.StringIO())
    got = outcomes(settings)
    status, error = got["Pro/poison.png"]
    assert status == "failed" and error is not None and "model process died" in error
    assert all(s == "done" for p, (s, _) in got.items() if p != "Pro/poison.png")


def test_a_model_that_refuses_one_image_fails_only_that_image_with_its_reason(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    _poison(archive / "Early")
    settings = settings.model_copy(update={"model": REPO / "tests" / "support" / "faulty.eim"})
    env = {"ALLSCREEN_EIM_FAULT": "refuse", "ALLSCREEN_EIM_PYTHON": sys.executable}
    with workers(settings, tmp_path, "dev", extra_env=env):
        submit([archive], settings, run_name="refuse", err=io.StringIO())
        watch("refuse", settings, err=io.StringIO())
    got = outcomes(settings)
    assert got["Early/poison.png"] == (
        "failed",
        "the model refused the image: input rejected: (all pixels saturated)",
    )
    assert all(s == "done" for p, (s, _) in got.items() if p != "Early/poison.png")


def _big_archive(src: Path, dest: Path, copies: int) -> int:
    """Distinct files (a unique trailer after each JPEG's end) from the images in `src`."""
    files = sorted(p for p in src.rglob("*.jpg"))
    n = 0
    for i in range(copies):
        for f in files:
            out = dest / f.parent.name / f"{f.stem}-{i}.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(f.read_bytes() + f"copy {i}".encode())
            n += 1
    return n


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_producer_interrupted_during_submission_completes_on_resubmit(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    big = tmp_path / "big"
    n = _big_archive(archive, big, copies=8)
    shutil.rmtree(archive)
    settings = settings.model_copy(update={"max_queued_batches": 2})
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ALLSCREEN_")},
        **settings_env(settings),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "allscreen", "submit", str(big), "--run", "ctrl-c"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a suite started in the background by a non-interactive shell
        # inherits SIGINT ignored, and Python then never turns it into KeyboardInterrupt.
        preexec_fn=_default_sigint,
    )
    assert settings.broker_url is not None
    client: redis.Redis[bytes] = redis.Redis.from_url(settings.broker_url)
    try:  # no worker yet: the producer fills its window of 2 batches, then waits for room
        wait_until(lambda: client.llen(settings.queue) >= 2, 60, "the producer's window to fill")
    finally:
        client.close()
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # say where it hangs, then stop it
        stack = subprocess.run(
            [str(Path(sys.executable).with_name("py-spy")), "dump", "--pid", str(proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        proc.kill()
        proc.communicate()
        hung = f"submit ignored SIGINT for 30 s; its stack:\n{stack.stdout}"
        raise AssertionError(hung) from None
    assert proc.returncode == 130, err
    assert "interrupted; the run is saved" in err and "Traceback" not in err
    with workers(settings, tmp_path, "dev", concurrency=2):
        again = submit([big], settings, run_name="ctrl-c", err=io.StringIO())
        _, counts, _ = watch("ctrl-c", settings, err=io.StringIO())
    assert counts.total == n and counts.done == n
    assert again.registered.new < n  # the first submission's registrations were kept
    _all_done(settings, n)
