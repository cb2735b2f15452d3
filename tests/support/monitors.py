"""Long-running `allscreen` services for tests (`flower`, `metrics`), on free loopback ports."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from allscreen.settings import Settings, settings_env

READY_SECONDS = 60.0  #: how long a service may take to answer its first request


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, *, auth: str | None = None, timeout: float = 10) -> str:
    """GET `url` (with `user:password` basic auth if given) and return the body."""
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


class Service:
    """One `allscreen SERVICE ...` process group with its log, reachable at `base_url`."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, base_url: str) -> None:
        self.proc = proc
        self.log = log
        self.base_url = base_url

    def text(self) -> str:
        """The service's log so far."""
        return self.log.read_text(errors="replace")

    def wait_ready(self, path: str) -> None:
        """Block until `path` answers; fail with the log if the process exits first."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.log.name} exited:\n{self.text()[-3000:]}")
            try:
                urllib.request.urlopen(self.base_url + path, timeout=2).close()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise AssertionError(f"{self.log.name} not ready:\n{self.text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM the process group, then SIGKILL what is left."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@contextmanager
def service(
    settings: Settings,
    tmp: Path,
    command: str,
    *args: str,
    port: int,
    ready_path: str,
    env: dict[str, str] | None = None,
) -> Iterator[Service]:
    """Run `allscreen COMMAND --port PORT ARGS`, wait for `ready_path`, stop it afterwards."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("ALLSCREEN_", "FLOWER_"))}
    full.update(settings_env(settings))
    full.update(env or {})
    log = tmp / f"{command}-{port}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "allscreen", command, "--port", str(port), *args],
            env=full,
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    svc = Service(proc, log, f"http://127.0.0.1:{port}")
    try:
        svc.wait_ready(ready_path)
        yield svc
    finally:
        svc.stop()
