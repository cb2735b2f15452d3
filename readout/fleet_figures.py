"""Fleet figures read from SQL and Redis: what `allscreen metrics` exports, per device.

Everything is read from the write-time tallies (allscreen/tallies.py): a scrape sums a few
rows per device, minute and latency bucket, never a row per image, so it costs the same for
a thousand results as for ten million. The Prometheus bucket bounds are among the tallies'
bucket edges, so the exported histograms are exact. Only the trailing-window rate reads
`results`, through the (device, finished_at) index, the window's rows alone. The figures cover
every result in the database: counters only grow while results are added, which is what
Prometheus' `rate()` expects, and they are the same whichever exporter or process reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, func, select

from allscreen.schema import Result, ResultTally, Run, RunTally
from allscreen.tallies import INFERENCE_BUCKETS, KIND_INFERENCE, KIND_WAIT, QUEUE_TO_RESULT_BUCKETS
from readout.tally_reads import Buckets, buckets, cumulative, device_counts, sums

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


def _histograms(
    hist: Buckets, scale: float, bounds: tuple[float, ...], sums: dict[str, tuple[int, float]]
) -> dict[str, Histogram]:
    """Prometheus histograms from tally buckets (`scale` turns their unit into seconds)."""
    out = {}
    for device, counts in hist.items():
        n, total = sums.get(device, (sum(counts.values()), 0.0))
        edges = tuple(b / scale for b in bounds)
        out[device] = Histogram(bounds, cumulative(counts, edges), n, total * scale)
    return out


def device_figures(engine: Engine, *, since: datetime) -> list[DeviceFigures]:
    """Per-device counts, latency histograms, and results finished at or after `since`."""
    counted = device_counts(engine, None)
    added = sums(engine, None)
    inference = _histograms(
        buckets(engine, None, KIND_INFERENCE),
        0.001,
        INFERENCE_BUCKETS,
        {d: (s[0], s[1]) for d, s in added.items()},
    )
    waited = _histograms(
        buckets(engine, None, KIND_WAIT),
        1.0,
        QUEUE_TO_RESULT_BUCKETS,
        {d: (s[2], s[3]) for d, s in added.items()},
    )
    recent: dict[str, int] = {}
    if counted:
        # The trailing window only: a range scan of ix_results_device_finished per device.
        stmt = (
            select(Result.device, func.count())
            .where(Result.device.in_(sorted(counted)), Result.finished_at >= since)
            .group_by(Result.device)
        )
        with engine.connect() as conn:
            recent = {str(d): int(n) for d, n in conn.execute(stmt)}
    return [
        DeviceFigures(
            device,
            done=done,
            failed=failed,
            recent=recent.get(device, 0),
            inference=inference.get(device),
            queue_to_result=waited.get(device),
        )
        for device, (done, failed) in sorted(counted.items())
    ]


def pending_by_run(engine: Engine) -> dict[str, int]:
    """Images still without a result, per run name (runs with none pending are left out):
    registered images minus results, both from the tallies (no anti-join of the tables)."""
    written = (
        select(
            ResultTally.run_id.label("run_id"),
            func.sum(ResultTally.done + ResultTally.failed).label("n"),
        )
        .group_by(ResultTally.run_id)
        .subquery()
    )
    stmt = (
        select(Run.name, RunTally.images - func.coalesce(written.c.n, 0))
        .join(RunTally, RunTally.run_id == Run.id)
        .outerjoin(written, written.c.run_id == Run.id)
    )
    with engine.connect() as conn:
        return {str(name): int(n) for name, n in conn.execute(stmt) if int(n) > 0}


def queue_figures(client: QueueClient, queue: str) -> tuple[int, int]:
    """(batches waiting in the queue, batches reserved by workers but not yet acknowledged)."""
    return int(client.llen(queue)), int(client.hlen(UNACKED_KEY))
