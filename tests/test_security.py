"""Only JSON batches of the agreed shape make a worker do anything."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from sqlalchemy import Engine

from allscreen.messages import TASK_CLASSIFY
from allscreen.settings import Settings
from producer.submit import submit, watch
from tests.support.runs import outcomes, wait_until
from tests.support.workers import workers
from worker.app import make_app


class _Touch:
    """Unpickling this creates a file: proof that pickled code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_a_pickle_message_is_refused_and_runs_no_code(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    marker = tmp_path / "pwned"
    assert pickle.loads(pickle.dumps(_Touch(tmp_path / "selftest")))  # the payload works
    app = make_app(settings)
    with workers(settings, tmp_path, "dev") as (w,):
        app.send_task(
            TASK_CLASSIFY, args=[_Touch(marker)], serializer="pickle", queue=settings.queue
        )
        wait_until(
            lambda: "Refusing to deserialize untrusted content" in w.text(),
            30,
            "the worker to refuse the pickle",
        )
        submit([archive], settings, run_name="after-pickle", err=io.StringIO())
        watch("after-pickle", settings, err=io.StringIO())
    assert not marker.exists()
    assert {s for s, _ in outcomes(settings).values()} == {"done"}


def test_malformed_and_unknown_tasks_are_rejected_and_the_worker_keeps_running(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    app = make_app(settings)
    with workers(settings, tmp_path, "dev") as (w,):
        app.send_task(
            TASK_CLASSIFY, args=[{"v": 1, "run_id": 1, "rm": "-rf /"}], queue=settings.queue
        )
        app.send_task(TASK_CLASSIFY, args=["not even an object"], queue=settings.queue)
        app.send_task("os.system", args=[f"touch {tmp_path / 'pwned'}"], queue=settings.queue)
        wait_until(
            lambda: w.text().count("rejected malformed batch message") == 2, 30, "two rejections"
        )
        wait_until(lambda: "unregistered task" in w.text(), 30, "the unknown task's rejection")
        submit([archive], settings, run_name="after-junk", err=io.StringIO())
        watch("after-junk", settings, err=io.StringIO())
    assert not (tmp_path / "pwned").exists()
    assert {s for s, _ in outcomes(settings).values()} == {"done"}
