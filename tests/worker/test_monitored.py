"""Batch tasks show monitors `run=… images=… ids=a..b` on every send, including retries."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
from celery.exceptions import MaxRetriesExceededError, Retry

from allscreen.messages import Batch, ImageItem
from allscreen.settings import Settings
from worker.app import make_app
from worker.monitored import BatchTask, describe_message

IMAGE = b"\xff\xd8\xff\xe0" + b"\x00JFIF" * 200  #: bytes whose base64 must never reach a monitor
MESSAGE = Batch(
    7, 1.0, (ImageItem(3, "a" * 64, data=IMAGE), ImageItem(9, "b" * 64, path="/archive/x.jpg"))
).to_message()
DESCRIPTION = "(run=7 images=2 ids=3..9)"


@pytest.fixture
def task_and_queue(broker_url: str) -> tuple[Any, str, redis.Redis[bytes]]:
    """A BatchTask on a real Redis, its queue name, and a client to read the queue."""
    queue = f"allscreen-t-{uuid.uuid4().hex[:8]}"
    app = make_app(Settings(broker_url=broker_url, queue=queue))

    @app.task(name="tests.batch", bind=True, base=BatchTask)  # type: ignore[untyped-decorator]
    def batch(self: Any, message: object) -> None:
        """Stands in for classify_batch: only its sending matters here."""

    return batch, queue, redis.Redis.from_url(broker_url)


def _headers(client: redis.Redis[bytes], queue: str) -> list[dict[str, Any]]:
    raw: list[bytes] = client.lrange(queue, 0, -1)
    return [json.loads(m)["headers"] for m in raw]


def test_describing_a_message_names_ids_and_counts_without_decoding_images() -> None:
    assert describe_message(MESSAGE) == DESCRIPTION[1:-1]
    assert describe_message("junk") == "(unreadable batch)"


def test_a_batch_sent_without_an_argsrepr_still_shows_only_its_description(
    task_and_queue: tuple[Any, str, redis.Redis[bytes]],
) -> None:
    task, queue, client = task_and_queue
    task.apply_async(args=[MESSAGE], queue=queue)
    (headers,) = _headers(client, queue)
    assert headers["argsrepr"] == DESCRIPTION and headers["kwargsrepr"] == "{}"


def test_a_retried_batch_shows_only_its_description(
    task_and_queue: tuple[Any, str, redis.Redis[bytes]],
) -> None:
    task, queue, client = task_and_queue
    task.push_request(
        id="retry-1",
        args=[MESSAGE],
        kwargs={},
        retries=0,
        called_directly=False,
        delivery_info={"exchange": "", "routing_key": queue},
    )
    try:
        with pytest.raises(Retry):
            task.retry(countdown=60, max_retries=3)
    finally:
        task.pop_request()
    (headers,) = _headers(client, queue)
    assert headers["argsrepr"] == DESCRIPTION and headers["retries"] == 1


def test_a_batch_out_of_retries_fails_without_quoting_its_message(
    task_and_queue: tuple[Any, str, redis.Redis[bytes]],
) -> None:
    task, queue, client = task_and_queue
    task.push_request(id="retry-2", args=[MESSAGE], kwargs={}, retries=3, called_directly=False)
    try:
        with pytest.raises(MaxRetriesExceededError) as caught:
            task.retry(countdown=60, max_retries=3)
    finally:
        task.pop_request()
    assert str(caught.value) == f"Can't retry tests.batch[retry-2] args:{DESCRIPTION}"
    assert caught.value.__suppress_context__
    assert _headers(client, queue) == []
