"""`allscreen devices`: the devices online now, their model, and what they did in the last minute.

Who is online comes from the workers' heartbeats in the broker (allscreen/presence.py); what
they did comes from SQL, the results each device finished in the trailing minute (across all
runs): images per second over that minute, and the median inference latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Engine, select

from allscreen.errors import BrokerUnavailable
from allscreen.presence import PRESENCE_TTL_SECONDS, DevicePresence, connect, online
from allscreen.schema import STATUS_DONE, Result
from allscreen.settings import Settings, mask_url
from readout.queries import percentile
from readout.tables import table_text

WINDOW_SECONDS = 60.0  #: the trailing window of the throughput and latency figures


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One online worker, with its figures over the trailing window."""

    presence: DevicePresence
    images: int  #: results (done or failed) finished in the window
    p50_ms: float | None  #: median inference time of the window's done images

    @property
    def images_per_second(self) -> float:
        """Throughput over the window."""
        return self.images / WINDOW_SECONDS


def online_devices(settings: Settings) -> list[DevicePresence]:
    """The workers whose heartbeat is fresh, from the broker."""
    client = connect(settings.effective_broker_url)
    try:
        return online(client, settings.queue)
    except (redis.RedisError, OSError) as exc:
        url = mask_url(settings.effective_broker_url)
        raise BrokerUnavailable(f"cannot reach the broker at {url}: {exc}") from exc
    finally:
        client.close()


def recent_figures(
    engine: Engine, devices: list[str], *, now: datetime | None = None
) -> dict[str, tuple[int, float | None]]:
    """(results, p50 inference ms) per device over the trailing window ending `now`."""
    if not devices:
        return {}
    since = (now or datetime.now(UTC)) - timedelta(seconds=WINDOW_SECONDS)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Result.device, Result.status, Result.inference_ms).where(
                Result.device.in_(devices), Result.finished_at >= since
            )
        ).all()
    counts: dict[str, int] = {}
    latencies: dict[str, list[float]] = {}
    for device, status, ms in rows:
        counts[device] = counts.get(device, 0) + 1
        if status == STATUS_DONE and ms is not None:
            latencies.setdefault(device, []).append(float(ms))
    return {d: (counts.get(d, 0), percentile(sorted(latencies.get(d, [])), 50)) for d in devices}


def device_rows(settings: Settings, engine: Engine) -> list[DeviceRow]:
    """Every online worker with its figures."""
    present = online_devices(settings)
    figures = recent_figures(engine, sorted({p.device for p in present}))
    return [DeviceRow(p, *figures.get(p.device, (0, None))) for p in present]


def devices_json(rows: list[DeviceRow]) -> list[dict[str, Any]]:
    """The `devices --json` contract: one object per online worker."""
    return [
        {
            "device": r.presence.device,
            "node": r.presence.node,
            "model_sha256": r.presence.model_sha256,
            "model_name": r.presence.model_name,
            "model_version": r.presence.model_version,
            "model_file": r.presence.model_file,
            "labels": list(r.presence.labels),
            "concurrency": r.presence.concurrency,
            "images_last_minute": r.images,
            "images_per_second": r.images_per_second,
            "p50_ms": r.p50_ms,
            "heartbeat_age_s": max(0.0, time.time() - r.presence.beat_at),
        }
        for r in rows
    ]


def render_devices(rows: list[DeviceRow], queue: str) -> str:
    """`devices` as a short table."""
    if not rows:
        return (
            f"no device is online on queue {queue} "
            f"(no worker heartbeat in the last {PRESENCE_TTL_SECONDS} s)"
        )
    cells = []
    for r in rows:
        p = r.presence
        model = f"{p.model_name} v{p.model_version}" if p.model_name else p.model_file
        p50 = "-" if r.p50_ms is None else f"{r.p50_ms:.1f}"
        cells.append(
            [
                p.device,
                p.node,
                model[:25],
                p.model_sha256[:12],
                p.concurrency,
                f"{r.images_per_second:.1f}",
                p50,
            ]
        )
    lines = [
        table_text(
            ["device", "node", "model", "sha256", "procs", "img/s", "p50 ms"],
            cells,
            right=["procs", "img/s", "p50 ms"],
        )
    ]
    lines.append(f"({len(rows)} online; img/s and p50 over the last {WINDOW_SECONDS:g} s)")
    return "\n".join(lines)
