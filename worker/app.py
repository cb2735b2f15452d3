"""The Celery app. `celery -A worker.app worker` and `allscreen worker` both start it."""

from __future__ import annotations

from celery import Celery

from allscreen.settings import get_settings
from worker.config import celery_config

app = Celery("allscreen", include=["worker.tasks"])
app.conf.update(celery_config(get_settings()))
