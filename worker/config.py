"""Celery configuration derived from the settings: JSON only, late acks, bounded prefetch."""

from __future__ import annotations

from typing import Any

from allscreen.settings import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings allscreen runs with; documented choices, not defaults by accident."""
    return {
        "broker_url": settings.effective_broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            "body_encoding": None,
        },
        # JSON only: a pickle message could make a worker run arbitrary code.
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        # Results live in SQL; Celery's own result backend would only duplicate them.
        "task_ignore_result": True,
        "result_backend": None,
        # At-least-once: ack after the results are committed, requeue when a child dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Two batches reserved per process: the next one is received (with its bookkeeping and
        # events) while this one runs, five round trips to Redis fewer between two batches.
        # More would only hold back batches that idle devices could take at the end of a run.
        "worker_prefetch_multiplier": 2,
        # A hung task is killed before the broker would hand its message to someone else.
        "task_time_limit": max(60.0, settings.visibility_timeout * 0.9),
        "task_default_queue": settings.queue,
        # Flower and `allscreen devices` read task events.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": True,
    }
