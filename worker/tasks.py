"""The Celery task: unpack the message, call `run_batch`, decide whether to retry."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import redis
from celery import Task
from celery.exceptions import Reject
from celery.signals import worker_process_shutdown

from allscreen import defaults
from allscreen.blobs import BlobStore
from allscreen.db import get_engine
from allscreen.errors import BadMessage, DatabaseUnavailable, ModelError, ModelMismatch
from allscreen.messages import TASK_CLASSIFY, Batch
from allscreen.settings import get_settings
from worker import blob_io
from worker.app import app
from worker.batch import record_batch_failed, run_batch
from worker.monitored import BatchTask
from worker.runner import GuardedImageRunner
from worker.session import ModelSession

log = logging.getLogger(__name__)

_session: ModelSession | None = None
_blobs: BlobStore | None = None


def device_name() -> str:
    """This device's name: `--device`/ALLSCREEN_DEVICE, else the host name."""
    return get_settings().device or socket.gethostname()


def get_session() -> ModelSession:
    """The process's model session, created on first use (not in process-init, which Celery
    limits to 4 s)."""
    global _session
    if _session is None:
        s = get_settings()
        _session = ModelSession(
            s.model,
            factory=lambda: GuardedImageRunner(
                str(s.model), start_timeout=s.model_start_timeout, timeout=s.model_timeout
            ),
            attempts=s.model_attempts,
        )
    return _session


def get_blobs() -> BlobStore:
    """The process's client for image bytes in Redis, created on first use (after a fork)."""
    global _blobs
    if _blobs is None:
        url = get_settings().effective_broker_url
        _blobs = BlobStore(
            redis.Redis.from_url(url, socket_timeout=60.0, socket_connect_timeout=10.0)
        )
    return _blobs


@worker_process_shutdown.connect  # type: ignore[untyped-decorator]
def _stop_model(**_: Any) -> None:
    if _session is not None:
        _session.close()
    if _blobs is not None:
        blob_io.settle()  # the last batch's keys are deleted before the process ends


@app.task(  # type: ignore[untyped-decorator]
    name=TASK_CLASSIFY,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    base=BatchTask,
    # No default bound: `retry(max_retries=None)` falls back to this, and a database outage must
    # never exhaust it. Model errors pass their own bound.
    max_retries=None,
)
def classify_batch(self: Task, message: object) -> dict[str, int]:
    """Classify one batch of images and upsert their results."""
    try:
        batch = Batch.from_message(message)
    except BadMessage as exc:
        # Acked and dropped: redelivering a malformed message would only fail again.
        log.error("rejected malformed batch message: %s", exc)
        return {"rejected": 1}
    s = get_settings()
    # Every statement of a batch runs under with_db_retry, which replaces a dropped connection.
    engine = get_engine(s.database_url, pre_ping=False)
    try:
        outcome = run_batch(
            batch,
            session=get_session(),
            engine=engine,
            device=device_name(),
            settings=s,
            blobs=get_blobs(),
        )
    except ModelMismatch as exc:
        # Never given up, never counted as a failure or a retry: the batch is for a device
        # holding the pinned model, and this one has recorded its refusal for `status`. A
        # requeued message goes to the back of the Redis queue, where any device can take it.
        log.warning("refused batch %s, returned to the queue: %s", batch.describe(), exc)
        time.sleep(defaults.MISMATCH_PAUSE_SECONDS)
        # A control signal to Celery, not an error: the line above says why, and Celery logs
        # a rejection with its traceback, so the mismatch's own traceback is left out.
        raise Reject(str(exc), requeue=True) from None
    except (DatabaseUnavailable, redis.RedisError) as exc:
        # Never given up: the batch waits in the broker until the database (or the Redis
        # holding its images' bytes) is back.
        log.error("batch %s returned to the queue: %s", batch.describe(), exc)
        raise self.retry(exc=exc, countdown=defaults.DB_RETRY_COUNTDOWN, max_retries=None) from exc
    except ModelError as exc:
        if self.request.retries < defaults.MODEL_START_RETRIES:
            log.error("batch %s returned to the queue: %s", batch.describe(), exc)
            raise self.retry(
                exc=exc,
                countdown=defaults.MODEL_RETRY_COUNTDOWN,
                max_retries=defaults.MODEL_START_RETRIES,
            ) from exc
        log.error("batch %s recorded failed: %s", batch.describe(), exc)
        outcome = record_batch_failed(
            batch, str(exc), engine=engine, device=device_name(), settings=s, blobs=get_blobs()
        )
    return {
        "done": outcome.done,
        "failed": outcome.failed,
        "skipped": outcome.skipped,
        "missing": outcome.missing,
    }
