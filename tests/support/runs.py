"""Helpers to watch and check runs from tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from allscreen.db import make_engine
from allscreen.schema import Image, Result
from allscreen.settings import Settings


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds, or fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def result_count(settings: Settings) -> int:
    """Result rows in the database."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Result)) or 0)
    finally:
        engine.dispose()


def outcomes(settings: Settings) -> dict[str, tuple[str, str | None]]:
    """path → (status, error) for every image, asserting exactly one result row each."""
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Image.path, Result.status, Result.error, Result.image_id).join(
                    Result, Result.image_id == Image.id, isouter=True
                )
            ).all()
    finally:
        engine.dispose()
    ids = [r.image_id for r in rows]
    assert None not in ids, "an image has no result"
    assert len(ids) == len(set(ids)), "an image has two results"
    return {r.path: (r.status, r.error) for r in rows}


def children(pid: int) -> list[int]:
    """Direct child processes of `pid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(entry.name))
    return out


def pool_processes(pid: int) -> list[int]:
    """A prefork worker's pool children: forked, so they share the parent's command line."""
    own = Path(f"/proc/{pid}/cmdline").read_bytes()
    out = []
    for child in children(pid):
        try:
            if Path(f"/proc/{child}/cmdline").read_bytes() == own:
                out.append(child)
        except OSError:
            continue
    return out


def alive(pid: int) -> bool:
    """Whether a process exists (zombies count as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and os.path.exists(f"/proc/{pid}")
