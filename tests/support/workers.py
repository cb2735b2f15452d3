"""Real Celery worker processes for integration tests, started through `allscreen worker`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from allscreen.settings import Settings, settings_env

READY_SECONDS = 90.0  #: how long a worker may take to pass its checks and connect


class WorkerProcess:
    """One `allscreen worker` process group, with its log."""

    def __init__(
        self,
        settings: Settings,
        device: str,
        log: Path,
        *,
        concurrency: int = 1,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        env = {**os.environ, **settings_env(settings), **(extra_env or {})}
        env["ALLSCREEN_DEVICE"] = device
        self.device = device
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "allscreen", "worker", "--concurrency", str(concurrency)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        """The worker's log so far."""
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Block until Celery says `ready.`; fail with the log if the worker dies first."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if " ready." in self.text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.device} exited:\n{self.text()[-3000:]}")
            time.sleep(0.1)
        raise AssertionError(f"worker {self.device} not ready:\n{self.text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the whole worker (parent and pool children)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)

    def stop(self) -> None:
        """A warm shutdown, then SIGKILL if it does not finish."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        # No model process may outlive its worker.
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)


@contextmanager
def workers(
    settings: Settings,
    tmp: Path,
    *devices: str,
    concurrency: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Iterator[list[WorkerProcess]]:
    """Start one worker per device name, wait until all are ready, stop them afterwards."""
    procs = [
        WorkerProcess(
            settings, d, tmp / f"worker-{d}.log", concurrency=concurrency, extra_env=extra_env
        )
        for d in devices
    ]
    try:
        for p in procs:
            p.wait_ready()
        yield procs
    finally:
        for p in procs:
            p.stop()
