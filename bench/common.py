"""Shared pieces of the benchmarks: images, worker processes, medians, a results table."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from allscreen.defaults import REPO_ROOT
from allscreen.settings import Settings, settings_env
from worker.runner import GuardedImageRunner
from worker.session import ModelSession

DATA = REPO_ROOT.parent / "shared" / "data" / "all"
MODEL = REPO_ROOT / "model" / "allscreen-all.eim"


def images(limit: int | None = None) -> list[Path]:
    """The shared ALL images, in a fixed order (exits with a message when absent)."""
    if not DATA.is_dir():
        sys.exit(f"benchmarks need the ALL image set at {DATA}")
    files = sorted(DATA.glob("*/*.jpg"))
    return files[:limit] if limit else files


def model_session() -> ModelSession:
    """A session on the reference `.eim`, as a worker holds one (one attempt per image)."""
    return ModelSession(
        MODEL,
        factory=lambda: GuardedImageRunner(str(MODEL), start_timeout=30, timeout=30),
        attempts=1,
    )


def median(xs: Sequence[float]) -> float:
    """The median, for figures quoted from repeated runs on a noisy machine."""
    return float(statistics.median(xs))


def machine() -> str:
    """One line describing where a figure was measured."""
    load = os.getloadavg()[0]
    return f"{socket.gethostname()}, {os.cpu_count()} cores, load {load:.2f} at start"


def start_worker(
    settings: Settings,
    device: str,
    concurrency: int,
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    celery_args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start `allscreen worker` in its own process group and wait until it is ready."""
    log = log or Path(tempfile.mkstemp(prefix=f"bench-{device}-", suffix=".log")[1])
    full = {**os.environ, **settings_env(settings), "ALLSCREEN_DEVICE": device, **(env or {})}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "allscreen",
                "worker",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "WARNING",
                *celery_args,
            ],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "ready." in text or "celery@" in text or _consuming(settings, text):
            return proc
        if proc.poll() is not None:
            sys.exit(f"worker {device} exited:\n{text[-2000:]}")
        time.sleep(0.1)
    sys.exit(f"worker {device} did not start")


def _consuming(settings: Settings, text: str) -> bool:
    # At WARNING level Celery prints no "ready."; the checks' last line means it is starting.
    return "reachable, schema current" in text and "Traceback" not in text


def replicate(dest: Path, copies: int, limit: int | None = None) -> Path:
    """An archive of `copies` distinct copies of the shared images (the first `limit` of
    them, for a short run), under `dest`.

    Copy k of an image is its bytes plus a few trailing bytes (JPEG decoders stop at the
    end-of-image marker), so every copy has its own sha256 and counts as a new image, while
    decoding and classifying it costs exactly what the original does.
    """
    paths = images(limit)
    if copies == 1 and limit is None:
        return DATA
    root = dest / (f"archive-x{copies}" + (f"-first{limit}" if limit else ""))
    if not root.is_dir():
        for k in range(copies):
            for p in paths:
                out = root / f"copy{k}" / p.parent.name / p.name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(p.read_bytes() + f"copy{k}".encode())
    return root


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """pid → (role, user+system CPU seconds) of every process now running on this machine.

    Role is `model`, `worker`, `redis` or `other`, read from the command line; the caller's
    own process is `producer`. Taken before and after a run, the difference shows where the
    machine's CPU went, per image.
    """
    hz = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        role = "producer" if pid == os.getpid() else _role(cmd)
        out[pid] = (role, (int(stat[11]) + int(stat[12])) / hz)
    return out


_ROLES = (("eim", "model"), ("allscreen worker", "worker"), ("redis-server", "redis"))


def _role(cmd: str) -> str:
    return next((role for mark, role in _ROLES if mark in cmd), "other")


def cpu_by_role(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds spent per role between two `cpu_seconds()` snapshots."""
    spent: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        delta = seconds - before.get(pid, (role, 0.0))[1]
        spent[role] = spent.get(role, 0.0) + delta
    return spent
