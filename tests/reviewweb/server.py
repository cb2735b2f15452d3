"""The review page for tests: `allscreen serve` in a subprocess, and a headless Chromium."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from allscreen.settings import Settings, settings_env
from tests.support.browser import chromium

START_SECONDS = 60.0  #: how long `allscreen serve` may take to answer its first request


def _unchecked_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


#: For a test's own self-signed certificate on 127.0.0.1 (never for anything else).
UNCHECKED_TLS = _unchecked_tls()


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, str, dict[str, str]]:
    """(status, body, headers with lower-case names) of one request, 4xx and 5xx included."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30, context=tls) as resp:
            body = resp.read().decode(errors="replace")
            return resp.status, body, {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read().decode(errors="replace")
            return exc.code, body, {k.lower(): v for k, v in exc.headers.items()}


@contextmanager
def review_server(settings: Settings, log: Path, *args: str) -> Iterator[str]:
    """Run `allscreen serve --port N ARGS` until the block ends; yield its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLSCREEN_")}
    env.update(settings_env(settings))
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "allscreen", "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    scheme = "https:" if "--ssl-certfile" in args else "http:"
    base = f"{scheme}//127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"allscreen serve exited:\n{log.read_text()[-3000:]}")
            try:
                fetch(base + "/static/review.css", tls=UNCHECKED_TLS)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"serve not up:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@contextmanager
def browser() -> Iterator[Browser]:
    """Headless Chromium (the system's binary, never a download), driven by Playwright."""
    executable = chromium()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()
