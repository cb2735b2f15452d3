"""The Celery app. `celery -A worker.app worker` and `allscreen worker` both start it."""

from __future__ import annotations

from celery import Celery

from allscreen.settings import Settings, get_settings
from worker.config import celery_config
from worker.heartbeat import Heartbeat


def make_app(settings: Settings) -> Celery:
    """A Celery app configured from `settings` (the producer builds one for its own settings)."""
    celery = Celery("allscreen", include=["worker.tasks"], set_as_current=False)
    celery.conf.update(celery_config(settings))
    celery.steps["worker"].add(Heartbeat)  # `allscreen devices` lists the workers by it
    return celery


app = make_app(get_settings())
app.set_current()
