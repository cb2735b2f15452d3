"""What monitors see of a batch task: `run=… images=… ids=a..b`, never bytes or paths.

Celery puts a repr of a task's arguments in its message headers and events, which Flower
shows and stores. The producer passes a safe `argsrepr`, but Celery does not carry it over
when a task retries itself: without this base class, a retried batch would show the first
kilobyte of its message (base64 image bytes, or archive paths) in Flower, and a batch out of
retries would quote the whole message in its error.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import MaxRetriesExceededError

from allscreen.messages import Batch, ImageItem


def describe_message(message: object) -> str:
    """`Batch.describe()` of a raw batch message, without decoding its images."""
    if not isinstance(message, dict):
        return "(unreadable batch)"
    images = message.get("images")
    ids = tuple(
        ImageItem(item["id"], "")
        for item in (images if isinstance(images, list) else [])
        if isinstance(item, dict) and isinstance(item.get("id"), int)
    )
    run_id = message.get("run_id")
    return Batch(run_id if isinstance(run_id, int) else -1, 0.0, ids).describe()


def safe_argsrepr(args: Any) -> str:
    """The argument repr monitors get for a batch task's positional `args`."""
    if isinstance(args, list | tuple) and len(args) == 1:
        return f"({describe_message(args[0])})"
    return f"({len(args) if isinstance(args, list | tuple) else 0} arguments)"


class BatchTask(Task):  # type: ignore[misc]  # celery is untyped
    """A task whose every send (first send, retry, replay) carries a safe `argsrepr`."""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Send the task, replacing Celery's default argument repr with `safe_argsrepr`."""
        options["argsrepr"] = safe_argsrepr(args or ())
        options["kwargsrepr"] = "{}" if not kwargs else f"({len(kwargs)} keyword arguments)"
        return super().apply_async(args, kwargs, **options)

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        """Retry as Celery does; when out of retries, say so without quoting the message.

        Celery's own MaxRetriesExceededError quotes the task's arguments, which would put the
        batch's image bytes into the failure Flower shows and stores.
        """
        try:
            return super().retry(*args, **kwargs)
        except MaxRetriesExceededError:
            request = self.request
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{safe_argsrepr(request.args or ())}"
            ) from None
