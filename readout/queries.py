"""Per-device figures of a run, read from SQL."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from allscreen.schema import STATUS_DONE, Result


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
    """Per-device counts and inference latency percentiles."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Result.device, Result.status, Result.inference_ms)
            .where(Result.run_id == run_id)
            .order_by(Result.device)
        ).all()
    by_device: dict[str, tuple[list[float], list[int]]] = {}
    for device, status, ms in rows:
        lat, n = by_device.setdefault(device, ([], [0, 0]))
        n[0 if status == STATUS_DONE else 1] += 1
        if ms is not None:
            lat.append(float(ms))
    out = []
    for device, (lat, n) in sorted(by_device.items()):
        lat.sort()
        out.append(DeviceStats(device, n[0], n[1], percentile(lat, 50), percentile(lat, 95)))
    return out


def run_span(engine: Engine, run_id: int) -> float | None:
    """Seconds from the first batch queued to the last result written, or None."""
    with engine.connect() as conn:
        first, last = conn.execute(
            select(func.min(Result.queued_at), func.max(Result.finished_at)).where(
                Result.run_id == run_id
            )
        ).one()
    if first is None or last is None:
        return None
    return float((last - first).total_seconds())
