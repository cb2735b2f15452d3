"""Which devices are online, and with which model: worker heartbeats kept in the broker.

Every worker writes one small JSON record under `allscreen:device:<queue>:<node>` and rewrites
it every `HEARTBEAT_SECONDS` with a time-to-live of `PRESENCE_TTL_SECONDS`. A worker that
stops cleanly deletes its record; one that dies drops out when the record expires. Readers
(`allscreen devices`) list the records of one queue: no broadcast, no waiting for replies.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

PRESENCE_PREFIX = "allscreen:device"  #: Redis key prefix of the worker heartbeat records
#: Seconds between two heartbeats of a worker.
HEARTBEAT_SECONDS = 10.0
#: Seconds a heartbeat record lives: three missed beats and the device counts as offline.
PRESENCE_TTL_SECONDS = 30
_SOCKET_TIMEOUT = 3.0  #: seconds a heartbeat or a listing may wait on Redis
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True, slots=True)
class DevicePresence:
    """What a worker says about itself in its heartbeat."""

    node: str  #: Celery node name (`device@host`), unique per worker
    device: str  #: the name recorded with each result
    queue: str
    concurrency: int
    model_file: str
    model_sha256: str
    model_name: str | None = None
    model_version: str | None = None
    labels: tuple[str, ...] = field(default_factory=tuple)
    started_at: float = 0.0  #: Unix time the worker started
    beat_at: float = 0.0  #: Unix time of this heartbeat

    def to_json(self) -> str:
        """The record as stored in Redis."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> DevicePresence:
        """Parse a stored record; raise ValueError when it is not one."""
        data: Any = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("presence record is not an object")
        try:
            return cls(
                node=str(data["node"]),
                device=str(data["device"]),
                queue=str(data["queue"]),
                concurrency=int(data["concurrency"]),
                model_file=str(data["model_file"]),
                model_sha256=str(data["model_sha256"]),
                model_name=None if data.get("model_name") is None else str(data["model_name"]),
                model_version=(
                    None if data.get("model_version") is None else str(data["model_version"])
                ),
                labels=tuple(str(x) for x in data.get("labels") or ()),
                started_at=float(data.get("started_at", 0.0)),
                beat_at=float(data.get("beat_at", 0.0)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"presence record lacks a field: {exc}") from exc


def presence_key(queue: str, node: str) -> str:
    """The Redis key of one worker's heartbeat record."""
    return f"{PRESENCE_PREFIX}:{queue}:{node}"


def connect(broker_url: str) -> redis.Redis[bytes]:
    """A Redis client on the broker, with short timeouts (a heartbeat must never hang)."""
    return redis.Redis.from_url(
        broker_url, socket_connect_timeout=_SOCKET_TIMEOUT, socket_timeout=_SOCKET_TIMEOUT
    )


def publish(
    client: redis.Redis[bytes], record: DevicePresence, *, ttl: int = PRESENCE_TTL_SECONDS
) -> None:
    """Write (or refresh) a worker's heartbeat record."""
    client.set(presence_key(record.queue, record.node), record.to_json(), ex=ttl)


def withdraw(client: redis.Redis[bytes], queue: str, node: str) -> None:
    """Delete a worker's record, so it leaves the listing at once when it stops cleanly."""
    client.delete(presence_key(queue, node))


def online(client: redis.Redis[bytes], queue: str) -> list[DevicePresence]:
    """Every worker on `queue` whose heartbeat has not expired, sorted by device and node."""
    pattern = presence_key(_GLOB_SPECIAL.sub(r"\\\1", queue), "*")
    keys = list(client.scan_iter(match=pattern, count=500))
    records: list[DevicePresence] = []
    if keys:
        for raw in client.mget(keys):
            if raw is None:  # expired between SCAN and MGET
                continue
            try:
                record = DevicePresence.from_json(raw)
            except ValueError:
                continue  # not ours (another tool's key under our prefix): not a device
            if record.queue == queue:  # queue `a` must not list the workers of `a:b`
                records.append(record)
    return sorted(records, key=lambda r: (r.device, r.node))
