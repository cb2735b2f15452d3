"""Reading the batch messages a producer left in a Redis queue, as a worker would."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

from allscreen.settings import Settings
from tests.support.runs import wait_until


def queued_batches(client: redis.Redis[bytes], queue: str) -> list[dict[str, Any]]:
    """The batch message (the task's one argument) of every message waiting in `queue`, in
    the order workers will take them (kombu pushes on the left and workers pop on the right).

    The envelope says how kombu encoded the body; allscreen sends it unencoded, but a message
    from an older producer may carry base64.
    """
    batches = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, _kwargs, _embed = json.loads(body)
        batches.append(args[0])
    return batches


def wait_for_full_window(settings: Settings, batches: int = 2) -> None:
    """Wait until the run's queue holds `batches` messages: with no device yet, a producer
    has filled its window (`max_queued_batches`) and waits for room."""
    assert settings.broker_url is not None
    client: redis.Redis[bytes] = redis.Redis.from_url(settings.broker_url)
    try:
        wait_until(lambda: client.llen(settings.queue) >= batches, 60, "the window to fill")
    finally:
        client.close()
