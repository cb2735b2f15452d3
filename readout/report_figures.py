"""The figures behind the report's Devices section, aggregated in the database.

Latency spreads come from the tallies' log-spaced buckets (readout/tally_reads.py: each
percentile within 7.5 %). Throughput over time comes from the per-minute tallies when the
run lasted 40 minutes or more (bins of whole minutes, about 40 of them); a shorter run is
binned finer, by a GROUP BY over its results' finish times inside the database (such a run
has at most 40 minutes of results, so this stays small whatever the archive).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Float, Integer, cast, extract, func, select
from sqlalchemy.sql.elements import ColumnElement

from allscreen.schema import STATUS_DONE, Result
from allscreen.tallies import KIND_INFERENCE, KIND_WAIT
from readout.tally_reads import bucket_percentile, buckets, minutes

BINS = 40  #: about this many throughput bins; finer ones only show noise
MIN_BIN_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Spread:
    """Percentiles of one device's latencies, for a box plot (whiskers p5 and p95)."""

    p5: float
    p25: float
    p50: float
    p75: float
    p95: float
    n: int


@dataclass(frozen=True, slots=True)
class Throughput:
    """Done results per device in bins of `width` seconds from the first result."""

    width: float
    counts: dict[str, list[int]]

    @property
    def edges(self) -> list[float]:
        """Bin edges in seconds since the first result."""
        n = max((len(c) for c in self.counts.values()), default=0)
        return [i * self.width for i in range(n + 1)]


def spreads(engine: Engine, run_id: int, kind: str) -> dict[str, Spread]:
    """Per-device latency spreads of `kind` (inference in ms, wait in s)."""
    out = {}
    for device, counts in sorted(buckets(engine, run_id, kind).items()):
        qs = [bucket_percentile(counts, q) for q in (5, 25, 50, 75, 95)]
        if all(q is not None for q in qs):
            p5, p25, p50, p75, p95 = (float(q) for q in qs if q is not None)
            out[device] = Spread(p5, p25, p50, p75, p95, sum(counts.values()))
    return out


def inference_spreads(engine: Engine, run_id: int) -> dict[str, Spread]:
    """Model inference time per image (ms), per device."""
    return spreads(engine, run_id, KIND_INFERENCE)


def wait_spreads(engine: Engine, run_id: int) -> dict[str, Spread]:
    """Batch queued to image result (s), per device."""
    return spreads(engine, run_id, KIND_WAIT)


def _epoch(engine: Engine, col: Any) -> ColumnElement[float]:
    if engine.dialect.name == "postgresql":
        return cast(extract("epoch", col), Float)
    return (func.julianday(col) - 2440587.5) * 86400.0


def _from_minutes(per_minute: dict[str, dict[int, int]]) -> Throughput:
    first = min(m for ms in per_minute.values() for m in ms)
    last = max(m for ms in per_minute.values() for m in ms)
    step = max(1, math.ceil((last - first + 1) / BINS))  # minutes per bin
    nbins = (last - first) // step + 1
    counts = {}
    for device, ms in sorted(per_minute.items()):
        row = [0] * nbins
        for m, n in ms.items():
            row[(m - first) // step] += n
        counts[device] = row
    return Throughput(60.0 * step, counts)


def _fine(engine: Engine, run_id: int) -> Throughput | None:
    done = (Result.run_id == run_id, Result.status == STATUS_DONE)
    epoch = _epoch(engine, Result.finished_at)
    with engine.connect() as conn:
        start, end = conn.execute(select(func.min(epoch), func.max(epoch)).where(*done)).one()
        if start is None or end is None:
            return None
        span = max(float(end) - float(start), 1.0)
        width = max(MIN_BIN_SECONDS, span / BINS)
        nbins = math.ceil(span / width)
        offset = (epoch - float(start)) / width
        # Offsets are >= 0: SQLite's CAST truncates (its floor() may be compiled out).
        index = func.floor(offset) if engine.dialect.name == "postgresql" else cast(offset, Integer)
        rows = conn.execute(
            select(Result.device, index, func.count()).where(*done).group_by(Result.device, index)
        ).all()
    counts: dict[str, list[int]] = {}
    for device, i, n in rows:
        row = counts.setdefault(str(device), [0] * nbins)
        row[min(max(int(i), 0), nbins - 1)] += int(n)
    return Throughput(width, dict(sorted(counts.items())))


def throughput(engine: Engine, run_id: int) -> Throughput | None:
    """Done results over time per device, or None before the first one."""
    per_minute = minutes(engine, run_id)
    if not per_minute:
        return None
    first = min(m for ms in per_minute.values() for m in ms)
    last = max(m for ms in per_minute.values() for m in ms)
    if last - first + 1 >= BINS:
        return _from_minutes(per_minute)
    return _fine(engine, run_id)
