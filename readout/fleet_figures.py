"""Fleet figures read from SQL and Redis: what `allscreen metrics` exports, per device.

Everything is aggregated inside the database (GROUP BY device, one SUM(CASE ...) per histogram
bucket), so a scrape moves a few numbers per device, not a row per image. The figures cover
every result in the database: counters only grow while results are added, which is what
Prometheus' `rate()` expects, and they are the same whichever exporter or process reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, Float, and_, case, cast, extract, func, select
from sqlalchemy.sql.elements import ColumnElement

from allscreen.schema import STATUS_DONE, Image, Result, Run

#: Upper bounds (seconds) of the inference-latency buckets: a 96x96 CNN takes about a
#: millisecond on a desktop core and tens of milliseconds on a Jetson Nano's CPU.
INFERENCE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
#: Upper bounds (seconds) of the queue-to-result buckets: the producer keeps up to 16 batches
#: queued, so waits of seconds to minutes are normal; hours mean a stalled fleet.
QUEUE_TO_RESULT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
UNACKED_KEY = "unacked"  #: kombu's Redis hash of batches delivered but not yet acknowledged


@dataclass(frozen=True, slots=True)
class Histogram:
    """A cumulative histogram: `counts[i]` observations were <= `bounds[i]`."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    total: float


@dataclass(frozen=True, slots=True)
class DeviceFigures:
    """One device's results, over every run in the database."""

    device: str
    done: int = 0
    failed: int = 0
    recent: int = 0  #: results finished within the trailing window
    inference: Histogram | None = None  #: seconds per classification (done images)
    queue_to_result: Histogram | None = None  #: seconds from batch queued to image finished


class QueueClient(Protocol):
    """The two Redis calls the queue figures need (redis.Redis satisfies it)."""

    def llen(self, name: str) -> Any:
        """Length of a list."""

    def hlen(self, name: str) -> Any:
        """Number of fields in a hash."""


def _seconds_between(engine: Engine, start: Any, end: Any) -> ColumnElement[Any]:
    """SQL for `end - start` in seconds, clamped at 0 (device clocks may run behind)."""
    if engine.dialect.name == "postgresql":
        diff: ColumnElement[Any] = cast(extract("epoch", end - start), Float)
    else:  # SQLite stores UTC timestamps as text; julianday() reads them in days
        diff = (func.julianday(end) - func.julianday(start)) * 86400.0
    return case((diff < 0, 0.0), else_=diff)


def _histograms(
    engine: Engine, value: ColumnElement[Any], bounds: tuple[float, ...]
) -> dict[str, Histogram]:
    cols = [func.count(value), func.coalesce(func.sum(value), 0.0)]
    cols += [func.coalesce(func.sum(case((value <= b, 1), else_=0)), 0) for b in bounds]
    stmt = (
        select(Result.device, *cols)
        .where(Result.status == STATUS_DONE, value.is_not(None))
        .group_by(Result.device)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return {
        str(r[0]): Histogram(bounds, tuple(int(c) for c in r[3:]), int(r[1]), float(r[2]))
        for r in rows
    }


def device_figures(engine: Engine, *, since: datetime) -> list[DeviceFigures]:
    """Per-device counts, latency histograms, and results finished at or after `since`."""
    with engine.connect() as conn:
        counted = conn.execute(
            select(
                Result.device,
                func.coalesce(func.sum(case((Result.status == STATUS_DONE, 1), else_=0)), 0),
                func.coalesce(func.sum(case((Result.status != STATUS_DONE, 1), else_=0)), 0),
                func.coalesce(func.sum(case((Result.finished_at >= since, 1), else_=0)), 0),
            ).group_by(Result.device)
        ).all()
    inference = _histograms(engine, Result.inference_ms / 1000.0, INFERENCE_BUCKETS)
    waited = _histograms(
        engine,
        _seconds_between(engine, Result.queued_at, Result.finished_at),
        QUEUE_TO_RESULT_BUCKETS,
    )
    return [
        DeviceFigures(
            str(device),
            done=int(done),
            failed=int(failed),
            recent=int(recent),
            inference=inference.get(str(device)),
            queue_to_result=waited.get(str(device)),
        )
        for device, done, failed, recent in sorted(counted, key=lambda r: str(r[0]))
    ]


def pending_by_run(engine: Engine) -> dict[str, int]:
    """Images still without a result, per run name (runs with none pending are left out)."""
    stmt = (
        select(Run.name, func.count(Image.id))
        .join(Image, Image.run_id == Run.id)
        .outerjoin(Result, and_(Result.run_id == Image.run_id, Result.image_id == Image.id))
        .where(Result.id.is_(None))
        .group_by(Run.name)
    )
    with engine.connect() as conn:
        return {str(name): int(n) for name, n in conn.execute(stmt)}


def queue_figures(client: QueueClient, queue: str) -> tuple[int, int]:
    """(batches waiting in the queue, batches reserved by workers but not yet acknowledged)."""
    return int(client.llen(queue)), int(client.hlen(UNACKED_KEY))
