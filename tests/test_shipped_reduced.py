"""`ALLSCREEN_SHIP_SIDE`: the producer ships reduced copies; fewer bytes, the same labels.

The same archive of real smears upscaled to 2 MP camera fields (made here, never committed) is
submitted twice, as it is and with the option, then screened by a real worker with the
reference model: both runs complete, the second put a fraction of the bytes into Redis, and
every image gets the same top label in both.
"""

from __future__ import annotations

import io
from pathlib import Path

import redis
from sqlalchemy import select

from allscreen.blobs import blob_key
from allscreen.db import make_engine
from allscreen.schema import STATUS_DONE, Image, Result
from allscreen.settings import Settings
from bench.large_set import KINDS, split_images, write_large_set
from producer.submit import submit, watch
from tests.conftest import need
from tests.support.images import DATA, LABELS
from tests.support.workers import workers

PER_CLASS = 2  #: real smears per class (8 images)
SHIP_SIDE = 192  #: twice the reference model's input


def _redis_bytes(settings: Settings, run_id: int) -> int:
    """Image bytes waiting in Redis for one run."""
    assert settings.broker_url is not None
    client = redis.Redis.from_url(settings.broker_url)
    try:
        prefix = blob_key(settings.queue, run_id, 0).rsplit(":", 1)[0]
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        return sum(len(v or b"") for v in client.mget(keys))
    finally:
        client.close()


def _labels(settings: Settings, run_id: int) -> dict[str, str | None]:
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(Image.path, Result.status, Result.label)
                .join(Result, Result.image_id == Image.id)
                .where(Image.run_id == run_id)
            ).all()
    finally:
        engine.dispose()
    assert {r.status for r in rows} == {STATUS_DONE}
    return {r.path: r.label for r in rows}


def test_a_run_shipped_reduced_puts_fewer_bytes_through_redis_and_gets_the_same_labels(
    fleet: Settings, tmp_path: Path
) -> None:
    if not (DATA / "split.csv").exists():
        need(f"the shared ALL image set is not at {DATA} (see ../shared/data/README.md)")
    rows = split_images("test")
    sources = [row for lab in LABELS for row in [r for r in rows if r[1] == lab][:PER_CLASS]]
    archive = write_large_set(tmp_path / "large", KINDS["2mp-jpeg"], sources, seed=3)
    shipped = fleet.model_copy(update={"ship_side": SHIP_SIDE})
    as_is = submit([archive], fleet, run_name="as-is", err=io.StringIO())
    reduced = submit([archive], shipped, run_name="reduced", err=io.StringIO())
    assert as_is.registered.new == reduced.registered.new == len(sources)
    full_bytes = _redis_bytes(fleet, as_is.run_id)
    small_bytes = _redis_bytes(fleet, reduced.run_id)
    assert full_bytes == sum(p.stat().st_size for p in archive.rglob("*.jpg"))
    assert small_bytes * 5 < full_bytes
    with workers(fleet, tmp_path, "dev"):
        for name in ("as-is", "reduced"):
            _, counts, _ = watch(name, fleet, err=io.StringIO())
            assert counts.done == counts.total == len(sources)
    assert _labels(fleet, reduced.run_id) == _labels(fleet, as_is.run_id)
