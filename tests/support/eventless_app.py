"""A Celery app whose workers send no task events until told to (`enable_events`).

`tests/worker/test_flower.py` runs a worker of it to show that Flower switches task events on
by itself, so workers started with another configuration still show up with their tasks.
"""

from __future__ import annotations

import os

from celery import Celery

BROKER_ENV = "ALLSCREEN_TEST_EVENTLESS_BROKER"  #: the broker URL, from the test
QUEUE = "eventless"  #: the queue its worker consumes

app = Celery("eventless", broker=os.environ.get(BROKER_ENV, "memory://"), set_as_current=False)
app.conf.update(
    worker_send_task_events=False,
    task_send_sent_event=False,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="tests.ping")  # type: ignore[untyped-decorator]
def ping() -> str:
    """A task with nothing to do."""
    return "pong"
