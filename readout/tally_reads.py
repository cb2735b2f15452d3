"""Reads of the tally tables (allscreen/tallies.py): a run's figures without reading its rows.

Each read sums a few rows per device and minute (or per bucket, or per label pair), so it
costs the same for a run of a thousand images as for one of ten million. Percentiles come
from the log-spaced latency buckets: each spans a factor 10^(1/32), so a percentile read here
is within 7.5 % of the exact one (interpolated geometrically inside its bucket).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from allscreen.schema import LabelTally, LatencyTally, ResultTally, RunTally
from allscreen.tallies import BUCKET_EDGES, KIND_INFERENCE, OVERFLOW

#: device → bucket index → done results in it
Buckets = dict[str, dict[int, int]]


@dataclass(frozen=True, slots=True)
class Totals:
    """A run's counts, from the tallies."""

    images: int
    done: int
    failed: int


def totals(engine: Engine, run_id: int) -> Totals:
    """Registered images, done and failed results of run `run_id`."""
    with engine.connect() as conn:
        images = conn.scalar(select(RunTally.images).where(RunTally.run_id == run_id)) or 0
        done, failed = conn.execute(
            select(
                func.coalesce(func.sum(ResultTally.done), 0),
                func.coalesce(func.sum(ResultTally.failed), 0),
            ).where(ResultTally.run_id == run_id)
        ).one()
    return Totals(int(images), int(done), int(failed))


def device_counts(engine: Engine, run_id: int | None) -> dict[str, tuple[int, int]]:
    """(done, failed) per device, of one run or (None) of every run."""
    stmt = select(
        ResultTally.device, func.sum(ResultTally.done), func.sum(ResultTally.failed)
    ).group_by(ResultTally.device)
    if run_id is not None:
        stmt = stmt.where(ResultTally.run_id == run_id)
    with engine.connect() as conn:
        return {str(d): (int(n), int(f)) for d, n, f in conn.execute(stmt) if int(n) or int(f)}


def sums(engine: Engine, run_id: int | None) -> dict[str, tuple[int, float, int, float]]:
    """(inference n, inference ms sum, wait n, wait s sum) per device."""
    t = ResultTally
    stmt = select(
        t.device,
        func.sum(t.inference_n),
        func.sum(t.inference_ms_sum),
        func.sum(t.wait_n),
        func.sum(t.wait_s_sum),
    ).group_by(t.device)
    if run_id is not None:
        stmt = stmt.where(t.run_id == run_id)
    with engine.connect() as conn:
        return {
            str(r[0]): (int(r[1]), float(r[2]), int(r[3]), float(r[4])) for r in conn.execute(stmt)
        }


def buckets(engine: Engine, run_id: int | None, kind: str = KIND_INFERENCE) -> Buckets:
    """The latency histogram of `kind` per device (empty buckets left out)."""
    t = LatencyTally
    stmt = select(t.device, t.bucket, func.sum(t.n)).where(t.kind == kind)
    if run_id is not None:
        stmt = stmt.where(t.run_id == run_id)
    out: Buckets = {}
    with engine.connect() as conn:
        for device, bucket, n in conn.execute(stmt.group_by(t.device, t.bucket)):
            if int(n):
                out.setdefault(str(device), {})[int(bucket)] = int(n)
    return out


def bucket_percentile(counts: Mapping[int, int], q: float) -> float | None:
    """The q-th percentile (0..100) of a bucketed histogram, or None when it is empty."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q / 100 * total
    seen = 0
    for bucket in sorted(counts):
        n = counts[bucket]
        if n <= 0:
            continue
        if seen + n >= rank:
            upper = BUCKET_EDGES[min(bucket, OVERFLOW - 1)]
            if bucket == 0 or bucket >= OVERFLOW:
                return upper
            lower = BUCKET_EDGES[bucket - 1]
            share = max(0.0, min(1.0, (rank - seen) / n))
            return math.exp(math.log(lower) + (math.log(upper) - math.log(lower)) * share)
        seen += n
    return BUCKET_EDGES[min(max(counts), OVERFLOW - 1)]


def cumulative(counts: Mapping[int, int], bounds: tuple[float, ...]) -> tuple[int, ...]:
    """Counts of values <= each of `bounds` (each bound is one of BUCKET_EDGES)."""
    index = [min(range(OVERFLOW), key=lambda i: abs(BUCKET_EDGES[i] - b)) for b in bounds]
    return tuple(sum(n for k, n in counts.items() if k <= i) for i in index)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back naive; they were written in UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def span(engine: Engine, run_id: int) -> tuple[datetime | None, datetime | None]:
    """(first batch queued, last result finished) of run `run_id`."""
    with engine.connect() as conn:
        first, last = conn.execute(
            select(
                func.min(ResultTally.first_queued_at), func.max(ResultTally.last_finished_at)
            ).where(ResultTally.run_id == run_id)
        ).one()
    return _utc(first), _utc(last)


def minutes(engine: Engine, run_id: int) -> dict[str, dict[int, int]]:
    """Done results per device and UTC epoch minute they finished."""
    t = ResultTally
    stmt = select(t.device, t.minute, t.done).where(t.run_id == run_id, t.done > 0)
    out: dict[str, dict[int, int]] = {}
    with engine.connect() as conn:
        for device, minute, n in conn.execute(stmt):
            out.setdefault(str(device), {})[int(minute)] = int(n)
    return out


def label_pairs(engine: Engine, run_id: int) -> dict[tuple[str | None, str | None], int]:
    """Done results per (ground truth, predicted label); None where there is none."""
    t = LabelTally
    stmt = (
        select(t.truth, t.label, func.sum(t.n)).where(t.run_id == run_id).group_by(t.truth, t.label)
    )
    with engine.connect() as conn:
        return {
            (truth or None, label or None): int(n)
            for truth, label, n in conn.execute(stmt)
            if int(n)
        }
