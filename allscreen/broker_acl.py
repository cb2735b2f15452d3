"""The Redis ACL of a device: allscreen's queue and blob keys, and the commands a worker sends.

A worker's Redis traffic comes from three places, and the rules below cover exactly those:

- kombu's Redis transport (Celery's broker): the queue list `<queue>` and its priority lists
  `<queue>\\x06\\x16<n>`; the binding tables `_kombu.binding.<exchange>` and their
  bookkeeping `_kombu.binding_permanent.<exchange>` and `_kombu.binding_deadlines`; the
  unacknowledged-message hash `unacked`, its index `unacked_index` and the `unacked_mutex`
  lock; the remote-control (pidbox) queues `<node>.celery.pidbox` and
  `<id>.reply.celery.pidbox`; and pub/sub channels `/<db>.celeryev/*` (task events) and
  `/<db>.celery.pidbox*` (remote control). Its expiring bindings are kept by two Lua
  scripts (EVALSHA).
- the blob store (`allscreen.blobs`): `allscreen:blob:<queue>:*`, read with MGET and dropped
  with UNLINK;
- the heartbeat (`allscreen.presence`): `allscreen:device:<queue>:*`, SET with a TTL and DEL.

Everything else is denied: other keys, and every command not listed (FLUSHALL, FLUSHDB,
CONFIG, KEYS, SCAN, MONITOR, DEBUG, SHUTDOWN, ACL SETUSER, CLIENT KILL, INFO, ...). The
producer, Flower and the read side keep an owner user (the `default` user with a password,
or an ACL user with `+@all`).
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

DEVICE_USER = "allscreen-device"  #: the default name of the devices' Redis ACL user

#: The commands a worker sends, and why (found in kombu's Redis transport, redis-py's
#: connection set-up, allscreen's blob store and heartbeat, and checked on real runs).
DEVICE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("ping hello auth select echo", "connection set-up and health checks"),
    ("client|setname client|id", "kombu names its connections"),
    ("acl|whoami", "`worker --check` names the user it runs as"),
    ("lpush rpush brpop llen", "queues: publish, consume, requeue, measure"),
    ("sadd srem smembers", "kombu's binding tables"),
    ("hset hget hdel zadd zrem zrange zrangebyscore", "kombu's unacked messages and index"),
    ("hgetall", "the holders of a queue's batches (worker.reclaim)"),
    ("set get mget del unlink exists expire pexpire", "blobs, heartbeats, kombu's mutex"),
    ("multi exec discard watch unwatch", "kombu's transactions and pipelines"),
    ("eval evalsha script|load script|exists time", "kombu's binding scripts"),
    ("publish psubscribe punsubscribe subscribe unsubscribe", "task events, remote control"),
)

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_PRIORITY_GLOB = "??[0-9]"  #: kombu's separator "\x06\x16" and one priority digit


def _glob(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def broker_db(url: str) -> int:
    """The Redis database number of a broker URL (kombu puts it in its channel names)."""
    path = urlsplit(url).path.strip("/")
    return int(path) if path.isdigit() else 0


def device_key_patterns(queue: str) -> list[str]:
    """The key patterns a device may touch, for allscreen's queue `queue`."""
    q = _glob(queue)
    return [
        q,
        q + _PRIORITY_GLOB,
        "_kombu.binding.*",
        "_kombu.binding_permanent.*",
        "_kombu.binding_deadlines",
        "unacked",
        "unacked_index",
        "unacked_mutex",
        "*.celery.pidbox",
        "*.celery.pidbox" + _PRIORITY_GLOB,
        # allscreen's own keys for this queue: blobs, heartbeats, the batches each holds.
        f"allscreen:*:{q}",
        f"allscreen:*:{q}:*",
    ]


def device_channel_patterns(db: int) -> list[str]:
    """The pub/sub channels a device may use: task events and Celery's remote control.

    Redis compares a PSUBSCRIBE pattern literally with these, so they are the exact patterns
    kombu subscribes to.
    """
    return [f"/{db}.celeryev/*", f"/{db}.celery.pidbox", f"/{db}.celery.pidbox/*"]


def device_commands() -> list[str]:
    """Every command (or `command|subcommand`) a device may run."""
    return [c for words, _ in DEVICE_COMMANDS for c in words.split()]


def device_rules(queue: str, db: int) -> list[str]:
    """The ACL rules of the device user, without its name or password (after a `reset`)."""
    return [
        # Redis 6 lets a new user use every channel unless told otherwise, even after `reset`.
        "resetchannels",
        *(f"~{p}" for p in device_key_patterns(queue)),
        *(f"&{p}" for p in device_channel_patterns(db)),
        *(f"+{c}" for c in device_commands()),
    ]


def password_rule(password: str) -> str:
    """The ACL rule for `password`, as its sha256 so the ACL file holds no clear text."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def device_acl_line(user: str, password: str, *, queue: str, db: int) -> str:
    """One ACL-file line (`user NAME on #SHA256 ...`) for the devices' user."""
    rules = ["reset", "on", password_rule(password), *device_rules(queue, db)]
    return " ".join(["user", user, *rules])
