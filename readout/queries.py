"""Per-device figures of a run, read from the write-time tallies (allscreen/tallies.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from allscreen.tallies import KIND_INFERENCE
from readout.tally_reads import bucket_percentile, buckets, device_counts, span


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """One device's share of a run."""

    device: str
    done: int
    failed: int
    p50_ms: float | None
    p95_ms: float | None


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation, or None for no values."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def device_stats(engine: Engine, run_id: int) -> list[DeviceStats]:
    """Per-device counts and inference latency percentiles (p50, p95 within 7.5 %, read from
    the tallies' log-spaced buckets)."""
    counted = device_counts(engine, run_id)
    hist = buckets(engine, run_id, KIND_INFERENCE)
    return [
        DeviceStats(
            device,
            done,
            failed,
            bucket_percentile(hist.get(device, {}), 50),
            bucket_percentile(hist.get(device, {}), 95),
        )
        for device, (done, failed) in sorted(counted.items())
    ]


def run_span(engine: Engine, run_id: int) -> float | None:
    """Seconds from the first batch queued to the last result written, or None."""
    first, last = span(engine, run_id)
    if first is None or last is None:
        return None
    return float((last - first).total_seconds())
