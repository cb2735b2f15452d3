"""Several producers on one run: real `submit` processes at once, real workers, one send each.

Each test starts its producers together on an empty broker, the case where each would once
have re-sent every pending image of the run, and checks that every image has one result row
and was delivered to a device once (`images.deliveries`), and that the producers' own counts
of images sent add up to the run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, select

from allscreen.db import make_engine
from allscreen.schema import Image
from allscreen.settings import Settings, settings_env
from tests.support.cli import allscreen
from tests.support.images import archive_of
from tests.support.queue import wait_for_full_window
from tests.support.runs import outcomes, wait_until
from tests.support.workers import workers

PER_CLASS = 20  #: 80 images: several batches per producer at the test's batch size of 4
WAIT_SECONDS = 120.0


def _start(settings: Settings, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLSCREEN_")}
    env.update(settings_env(settings))
    return subprocess.Popen(
        [sys.executable, "-m", "allscreen", "submit", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> str:
    _, err = proc.communicate(timeout=WAIT_SECONDS)
    assert proc.returncode == 0, err
    return err


def _sent(err: str) -> int:
    m = re.search(r"^enqueued (\d+) images", err, re.M)
    assert m is not None, err
    return int(m.group(1))


def _registered(err: str) -> int:
    m = re.search(r"^registered (\d+) new images", err, re.M)
    assert m is not None, err
    return int(m.group(1))


def _deliveries(settings: Settings) -> list[int]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return [int(d) for d in conn.scalars(select(Image.deliveries))]
    finally:
        engine.dispose()


def _check_run(settings: Settings, run: str, n: int) -> None:
    wait_until(lambda: len(_deliveries(settings)) == n, WAIT_SECONDS, "every registration")
    st = allscreen("status", run, "--json", settings=settings)
    assert st.returncode == 0, st.stderr
    rows = outcomes(settings)  # asserts one result row per image
    assert len(rows) == n and {status for status, _ in rows.values()} == {"done"}
    assert sorted(set(_deliveries(settings))) == [1], "an image went to a device twice"
    assert f'"total": {n}' in st.stdout and '"pending": 0' in st.stdout


def _all_results(settings: Settings, n: int) -> None:
    def finished() -> bool:
        got = allscreen("status", "r", "--json", settings=settings).stdout
        return f'"done": {n}' in got

    wait_until(finished, WAIT_SECONDS, f"{n} results")


def test_two_producers_on_shards_of_one_archive_send_each_image_once(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    root = archive_of(tmp_path / "archive", per_class=PER_CLASS)
    n = 4 * PER_CLASS
    with workers(settings, tmp_path, "dev", concurrency=2):
        procs = [_start(settings, str(root), "--run", "r", "--shard", f"{k}/2") for k in (1, 2)]
        errs = [_finish(p) for p in procs]
        _all_results(settings, n)
    registered = [_registered(e) for e in errs]
    assert sum(registered) == n and all(0 < r < n for r in registered)  # each hashed its half
    assert sum(_sent(e) for e in errs) == n
    _check_run(settings, "r", n)


def test_two_archives_submitted_into_one_run_at_once_send_each_image_once(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    first = archive_of(tmp_path / "first", per_class=PER_CLASS)
    second = tmp_path / "second"
    second.mkdir()
    for label in ("Pre", "Pro"):  # two archives with no image in common
        shutil.move(first / label, second / label)
    n = 4 * PER_CLASS
    with workers(settings, tmp_path, "dev", concurrency=2):
        procs = [_start(settings, str(root), "--run", "r") for root in (first, second)]
        errs = [_finish(p) for p in procs]
        _all_results(settings, n)
    assert [_registered(e) for e in errs] == [n // 2, n // 2]
    assert sum(_sent(e) for e in errs) == n
    _check_run(settings, "r", n)


def test_a_killed_shard_producer_submitted_again_completes_the_run_with_one_send_each(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    root = archive_of(tmp_path / "archive", per_class=PER_CLASS)
    n = 4 * PER_CLASS
    settings = settings.model_copy(update={"max_queued_batches": 2})
    # No device yet: both producers register their shards and fill the window of 2 batches,
    # then wait for room; one of them is killed there, without a chance to clean up.
    procs = [_start(settings, str(root), "--run", "r", "--shard", f"{k}/2") for k in (1, 2)]
    wait_for_full_window(settings)
    wait_until(lambda: len(_deliveries(settings)) == n, 60, "both shards registered")
    procs[0].send_signal(signal.SIGKILL)
    procs[0].communicate(timeout=30)
    with workers(settings, tmp_path, "dev", concurrency=2):
        survivor = _finish(procs[1])
        again = allscreen(
            *("submit", str(root), "--run", "r", "--shard", "1/2", "--wait"),
            settings=settings,
            timeout=WAIT_SECONDS,
        )
    assert again.returncode == 0, again.stderr
    assert _registered(again.stderr) == 0  # the killed producer's registrations were kept
    assert _sent(survivor) + _sent(again.stderr) <= n  # the rest went out before the kill
    _check_run(settings, "r", n)
