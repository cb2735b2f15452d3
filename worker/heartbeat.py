"""The worker's heartbeat: a Celery bootstep that keeps its presence record fresh in the broker.

`allscreen devices` lists these records. The record names the device, its Celery node, its
concurrency and its model (sha256 of the file, and the name, version and labels from the
model's `hello` when `allscreen worker` ran the start-up checks). The beat runs on the
worker's own timer in the main process, so a worker whose main loop is stuck stops beating
and drops out of the listing.

The same beat keeps the worker's lease on the batches it holds, and hands back the batches
of any peer whose lease expired (`worker.reclaim`).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, replace
from typing import Any

import redis
from celery import bootsteps
from celery.signals import task_received
from celery.worker import state
from kombu.exceptions import OperationalError

from allscreen.presence import (
    HEARTBEAT_SECONDS,
    DevicePresence,
    connect,
    publish,
    withdraw,
)
from allscreen.settings import Settings, get_settings
from worker.modelfile import file_sha256
from worker.reclaim import Holder, reclaim

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """Which model a device holds: the file and its sha256, plus what its `hello` said."""

    file: str
    sha256: str
    name: str | None = None
    version: str | None = None
    labels: tuple[str, ...] = ()


_announced: ModelIdentity | None = None


def announce(identity: ModelIdentity) -> None:
    """Hand the identity found by the start-up checks to this process's heartbeat."""
    global _announced
    _announced = identity


def identity_from_file(settings: Settings) -> ModelIdentity:
    """The identity of the configured model from its file alone (no model start)."""
    try:
        sha = file_sha256(settings.model)
    except OSError as exc:
        log.warning("cannot hash the model file %s: %s", settings.model, exc)
        sha = "unreadable"
    return ModelIdentity(file=str(settings.model), sha256=sha)


def presence_record(
    settings: Settings, *, node: str, concurrency: int, identity: ModelIdentity
) -> DevicePresence:
    """This worker's presence record, ready to publish."""
    now = time.time()
    return DevicePresence(
        node=node,
        device=settings.device or socket.gethostname(),
        queue=settings.queue,
        concurrency=concurrency,
        model_file=identity.file,
        model_sha256=identity.sha256,
        model_name=identity.name,
        model_version=identity.version,
        labels=identity.labels,
        started_at=now,
        beat_at=now,
    )


class Heartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
    """Publishes the worker's presence at start, every HEARTBEAT_SECONDS, and withdraws it."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._client: redis.Redis[bytes] | None = None
        self._record: DevicePresence | None = None
        self._holder: Holder | None = None
        self._app: Any = None
        self._tref: Any = None

    def start(self, parent: Any) -> None:
        """Send the first beat and schedule the next ones on the worker's timer."""
        settings = get_settings()
        identity = _announced or identity_from_file(settings)
        self._record = presence_record(
            settings,
            node=str(parent.hostname),
            concurrency=int(parent.concurrency or 0),
            identity=identity,
        )
        self._client = connect(settings.effective_broker_url)
        self._holder = Holder(self._client, settings.queue, self._record.node)
        self._app = parent.app
        task_received.connect(self.received, weak=False)
        log.info(
            "device %s online with model %s (sha256 %s)",
            self._record.device,
            identity.name or identity.file,
            identity.sha256,
        )
        self.beat()
        self._tref = parent.timer.call_repeatedly(HEARTBEAT_SECONDS, self.beat, priority=10)

    def received(self, sender: Any = None, request: Any = None, **_: Any) -> None:
        """Note a batch just received as held by this worker (Celery's `task_received`)."""
        holder = self._holder
        if holder is None or request is None:
            return
        try:
            holder.hold(str(request.message.delivery_tag))
        except redis.RedisError as exc:
            log.warning("could not note a held batch (the next heartbeat will): %s", exc)

    def beat(self) -> None:
        """Refresh the record and the lease, then hand back the batches of dead peers.

        A broker outage is logged, and the next beat tries again.
        """
        if self._client is None or self._record is None:
            return
        try:
            publish(self._client, replace(self._record, beat_at=time.time()))
        except redis.RedisError as exc:
            log.warning("heartbeat not sent (the device may show as offline): %s", exc)
            return
        if self._holder is None:
            return
        try:
            self._holder.renew(str(r.message.delivery_tag) for r in list(state.reserved_requests))
            reclaim(self._client, self._holder.queue, self._app)
        except (redis.RedisError, OSError, OperationalError) as exc:
            log.warning("could not hand back a dead device's batches (next beat retries): %s", exc)

    def stop(self, parent: Any) -> None:
        """Stop beating and delete the record, so the device leaves the listing at once."""
        if self._tref is not None:
            self._tref.cancel()
            self._tref = None
        task_received.disconnect(self.received)
        client, record, holder = self._client, self._record, self._holder
        self._client = None
        self._holder = None
        if client is None or record is None:
            return
        try:
            withdraw(client, record.queue, record.node)
            if holder is not None:
                holder.release()
        except redis.RedisError as exc:
            log.warning("could not withdraw the heartbeat (it expires by itself): %s", exc)
        finally:
            client.close()

    def terminate(self, parent: Any) -> None:
        """A cold shutdown withdraws the record too."""
        self.stop(parent)
