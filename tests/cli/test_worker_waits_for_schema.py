"""A device that boots before the server side waits for the schema instead of dying."""

from __future__ import annotations

import uuid
from pathlib import Path

from allscreen.settings import Settings
from tests.support.cli import allscreen
from tests.support.runs import wait_until
from tests.support.workers import WorkerProcess


def test_a_worker_on_a_database_without_schema_waits_then_starts_once_it_exists(
    broker_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        broker_url=broker_url,
        database_url=f"sqlite:///{tmp_path / 'empty.db'}",
        queue=f"allscreen-t-{uuid.uuid4().hex[:8]}",
    )
    worker = WorkerProcess(settings, "early-bird", tmp_path / "worker.log")
    try:
        wait_until(lambda: "no allscreen schema yet; waiting" in worker.text(), 60, "a wait line")
        assert worker.proc.poll() is None, worker.text()
        assert " ready." not in worker.text()
        up = allscreen("db", "upgrade", settings=settings)
        assert up.returncode == 0, up.stderr
        worker.wait_ready()
        assert "schema current" in worker.text()
        assert "Traceback" not in worker.text()
    finally:
        worker.stop()
