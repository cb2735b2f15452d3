"""`run_batch` on a run pinned to another model: refused before anything is counted or started."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from allscreen.errors import ModelMismatch
from allscreen.messages import Batch, ImageItem
from allscreen.refusals import refusals_of_run
from allscreen.schema import Image, Result
from allscreen.settings import Settings
from producer.archive import Found
from producer.register import get_or_create_run, register
from worker.batch import run_batch
from worker.session import ModelSession, Runner


def _never_started() -> Runner:
    raise AssertionError("a device must not start its model for a run pinned to another")


def _registered(engine: Engine, tmp_path: Path, pin: str) -> tuple[int, list[ImageItem]]:
    run_id, _ = get_or_create_run(engine, "pinned", pin=pin)
    found = []
    for i in range(3):
        path = tmp_path / f"img-{i}.png"
        path.write_bytes(f"image {i}".encode())
        found.append(Found(os.fsencode(path), path.name, None))
    register(engine, run_id, iter(found))
    with engine.connect() as conn:
        rows = conn.execute(select(Image.id, Image.sha256).where(Image.run_id == run_id)).all()
    return run_id, [ImageItem(int(i), str(sha), data=b"x") for i, sha in rows]


def test_a_batch_pinned_to_another_model_is_refused_and_nothing_is_counted(
    engine: Engine, tmp_path: Path
) -> None:
    model = tmp_path / "other.eim"
    model.write_text("#!/bin/sh\n# another model\n")
    model.chmod(0o755)
    held = hashlib.sha256(model.read_bytes()).hexdigest()
    pin = "a" * 64
    run_id, items = _registered(engine, tmp_path, pin)
    session = ModelSession(model, factory=_never_started, attempts=1)
    batch = Batch(run_id, time.time(), tuple(items), pin)
    settings = Settings(database_url=str(engine.url))

    for _ in range(2):
        with pytest.raises(ModelMismatch, match=f"pinned to model {pin[:12]}; device nano-2"):
            run_batch(batch, session=session, engine=engine, device="nano-2", settings=settings)

    with engine.connect() as conn:
        assert conn.scalars(select(Image.deliveries)).all() == [0, 0, 0]
        assert conn.scalars(select(Result.id)).all() == []
    (refusal,) = refusals_of_run(engine, run_id)
    assert (refusal.device, refusal.model_sha256, refusal.batches) == ("nano-2", held, 2)
    assert refusal.model_file == str(model)
