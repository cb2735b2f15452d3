"""Riding out a database outage: retry a unit of work with capped exponential backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from allscreen.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

_FIRST_DELAY = 0.25  #: seconds before the first retry
_MAX_DELAY = 5.0  #: seconds between retries at most, so recovery is noticed quickly


def with_db_retry(
    work: Callable[[], T], *, seconds: float, sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run `work`; while the database is unreachable, retry for up to `seconds`."""
    deadline = time.monotonic() + seconds
    delay = _FIRST_DELAY
    while True:
        try:
            return work()
        except (OperationalError, DBAPIError) as exc:
            transient = isinstance(exc, OperationalError) or exc.connection_invalidated
            if not transient or time.monotonic() + delay > deadline:
                first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                raise DatabaseUnavailable(f"database unavailable: {first}") from exc
            log.warning("database unavailable, retrying in %.2f s: %s", delay, exc.orig)
            sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
