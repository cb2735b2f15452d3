"""Handing a vanished device's batches back to the queue, within a minute of its last beat.

With late acknowledgement on Redis, kombu keeps every delivered batch in its `unacked` hash
until the worker acknowledges it; a device that loses power never does, and kombu returns the
batch to the queue only after the visibility timeout (600 s by default). The heartbeats that
`allscreen devices` reads notice the loss in 30 s, so each worker uses them to hand a dead
peer's batches back at once:

- Every worker's main process (where Celery receives messages) is one *holder*, named by an
  instance id made at start. On receiving a message it adds the delivery tag to its held set
  (`allscreen:held:<queue>:<instance>`), names itself in the queue's holders hash
  (`allscreen:holders:<queue>`, instance → node) and refreshes its lease
  (`allscreen:lease:<queue>:<instance>`), all in one transaction. Each heartbeat refreshes
  the lease with the presence record's time-to-live and rewrites the held set from the
  messages the worker still holds.
- After its own beat, every live worker looks for holders whose lease has expired. It claims
  one with `HDEL` on the holders hash (exactly one worker gets 1), drops the tags that a live
  holder holds now, and returns each message still unacknowledged to the front of its queue
  with kombu's own `restore_by_tag`.

Why this shape:
- **Never restored twice.** The claim lets one worker restore a dead holder's messages, and
  `restore_by_tag` moves a message out of `unacked` in a transaction that watches the hash:
  if kombu's own visibility-timeout scan (or an acknowledgement) got there first, nothing is
  pushed. Should a batch still run twice, the result upsert keeps one row per image.
- **A slow device keeps its batches.** The lease is refreshed by the heartbeat on the main
  process's timer, however long a batch takes in the pool processes; only a worker whose
  main process stops (power, SIGKILL, a hung host) loses it. A device that restarts gets a
  new instance id, so its old batches are handed back even though its node name is reused.
- **Redis, not SQL.** The message is still in `unacked`, with its images' bytes in Redis
  until their results are committed; restoring it needs no access to the archive, which a
  device does not have. Re-enqueueing from SQL would also leave the old message to be
  restored again when the visibility timeout expires.

Left to the visibility timeout (and to `submit --wait` or `resume`, from SQL): a worker killed
between kombu recording a delivery and the held-set write (a few milliseconds), and a claim
whose worker dies before restoring. Delivery tags belong to the message, not the delivery, so
a device that comes back after its batch was handed on and then acknowledges it clears the
new holder's `unacked` entry; should that holder die too, the images stay pending in SQL.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from allscreen.presence import PRESENCE_TTL_SECONDS

log = logging.getLogger(__name__)

HELD_PREFIX = "allscreen:held"  #: a holder's set of delivery tags
HOLDERS_PREFIX = "allscreen:holders"  #: a queue's hash of holders, instance → node
LEASE_PREFIX = "allscreen:lease"  #: a holder's lease, refreshed with each heartbeat
#: Seconds a held set outlives its last write: a bound on what a fleet that never restarts
#: leaves behind; a restarted worker reclaims long before it (kombu restores a batch older
#: than the visibility timeout in any case).
HELD_TTL_SECONDS = 24 * 3600


def held_key(queue: str, instance: str) -> str:
    """The Redis key of one holder's held delivery tags."""
    return f"{HELD_PREFIX}:{queue}:{instance}"


def holders_key(queue: str) -> str:
    """The Redis key of the hash naming every holder of `queue`."""
    return f"{HOLDERS_PREFIX}:{queue}"


def lease_key(queue: str, instance: str) -> str:
    """The Redis key of one holder's lease."""
    return f"{LEASE_PREFIX}:{queue}:{instance}"


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


@dataclass(slots=True)
class Holder:
    """One worker's record of the messages it holds, kept alive by its heartbeat."""

    client: redis.Redis[bytes]
    queue: str
    node: str
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    ttl: int = PRESENCE_TTL_SECONDS

    def _register(self, pipe: Any) -> None:
        pipe.hset(holders_key(self.queue), self.instance, self.node)
        pipe.set(lease_key(self.queue, self.instance), self.node, ex=self.ttl)
        pipe.expire(held_key(self.queue, self.instance), HELD_TTL_SECONDS)

    def hold(self, tag: str) -> None:
        """Record a message just received, before the next heartbeat could."""
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(held_key(self.queue, self.instance), tag)
        self._register(pipe)
        pipe.execute()

    def renew(self, tags: Iterable[str]) -> None:
        """Refresh the lease and replace the held set with the messages held now."""
        key = held_key(self.queue, self.instance)
        held = list(tags)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        if held:
            pipe.sadd(key, *held)
        self._register(pipe)
        pipe.execute()

    def release(self) -> None:
        """Forget this holder: a clean stop hands its messages back through kombu itself."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hdel(holders_key(self.queue), self.instance)
        pipe.delete(held_key(self.queue, self.instance), lease_key(self.queue, self.instance))
        pipe.execute()


@dataclass(frozen=True, slots=True)
class Orphans:
    """A dead holder's messages, claimed by this worker to be handed back."""

    node: str
    instance: str
    tags: tuple[str, ...]  #: delivery tags it held that no live holder holds


def claim_dead(client: redis.Redis[bytes], queue: str) -> list[Orphans]:
    """Claim every holder of `queue` whose lease expired; return what each one held.

    A holder is claimed by at most one caller (the one whose `HDEL` removed it), so two
    workers looking at the same moment never both restore its messages.
    """
    holders = {_text(k): _text(v) for k, v in client.hgetall(holders_key(queue)).items()}
    if not holders:
        return []
    instances = sorted(holders)
    leases = client.mget([lease_key(queue, i) for i in instances])
    dead = [i for i, lease in zip(instances, leases, strict=True) if lease is None]
    if not dead:
        return []
    live_tags: set[str] = set()
    for instance, lease in zip(instances, leases, strict=True):
        if lease is not None:
            live_tags.update(_text(t) for t in client.smembers(held_key(queue, instance)))
    claimed: list[Orphans] = []
    for instance in dead:
        if not client.hdel(holders_key(queue), instance):
            continue  # another worker claimed it first
        key = held_key(queue, instance)
        tags = {_text(t) for t in client.smembers(key)}
        client.delete(key)
        claimed.append(Orphans(holders[instance], instance, tuple(sorted(tags - live_tags))))
    return claimed


def restore(connection: Any, tags: Iterable[str]) -> int:
    """Return each still-unacknowledged message to the front of its queue; count them.

    `connection` is a kombu connection to the broker (`app.connection_for_write()`); kombu
    finds each message's queue from its exchange and routing key, as its own
    visibility-timeout scan does.
    """
    channel = connection.default_channel
    qos = channel.qos
    restored = 0
    for tag in tags:
        if channel.client.hget(channel.unacked_key, tag) is None:
            continue  # acknowledged, or already restored by kombu
        qos.restore_by_tag(tag, leftmost=False)
        restored += 1
    return restored


def reclaim(client: redis.Redis[bytes], queue: str, app: Any) -> list[tuple[Orphans, int]]:
    """Hand back the batches of every dead holder of `queue`; log and return what was done."""
    done: list[tuple[Orphans, int]] = []
    orphans = claim_dead(client, queue)
    if not orphans:
        return done
    with app.connection_for_write() as connection:
        for dead in orphans:
            n = restore(connection, dead.tags)
            done.append((dead, n))
            log.warning(
                "device %s stopped beating: handed %d of its batches back to the queue",
                dead.node,
                n,
            )
    return done
