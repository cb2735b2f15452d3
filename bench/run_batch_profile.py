"""`run_batch` against the same in-process loop, with a cProfile of `run_batch`.

Isolates the worker's own per-batch costs (SQL, bookkeeping) from Celery and the producer.
    .venv/bin/python -m bench.run_batch_profile [--images 640]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from allscreen.db import ensure_schema, make_engine
from allscreen.messages import Batch, ImageItem
from allscreen.schema import Image
from allscreen.settings import Settings
from bench.common import DATA, machine, model_session
from producer.archive import scan
from producer.register import get_or_create_run, register
from worker.batch import run_batch
from worker.decode import decode_bgr


def main() -> None:
    """Print both rates and the top of the profile."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=640)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(database_url=f"sqlite:///{tmp / 'profile.db'}")
    engine = make_engine(settings.database_url)
    ensure_schema(engine, create=True)
    run_id, _ = get_or_create_run(engine, "profile", pin=None)
    register(engine, run_id, scan([os.fsencode(DATA / "Early")], "none"))
    with engine.connect() as conn:
        rows = conn.execute(select(Image.id, Image.sha256, Image.location)).all()
    items = [ImageItem(i, sha, data=Path(os.fsdecode(loc)).read_bytes()) for i, sha, loc in rows]
    items = items[: args.images]
    session = model_session()
    _ = session.info
    t0 = time.perf_counter()
    for it in items:
        assert it.data is not None
        bgr = decode_bgr(it.data, max_bytes=1 << 25, max_pixels=40_000_000)
        session.classify(session.features_bgr(bgr))
    raw = len(items) / (time.perf_counter() - t0)
    batches = [
        Batch(run_id, time.time(), tuple(items[i : i + 32])) for i in range(0, len(items), 32)
    ]
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    for batch in batches:
        run_batch(batch, session=session, engine=engine, device="profile", settings=settings)
    profile.disable()
    rate = len(items) / (time.perf_counter() - t0)
    session.close()
    print(f"# {len(items)} images; {machine()}")
    print(f"in-process loop {raw:.0f} img/s, run_batch {rate:.0f} img/s, ratio {rate / raw:.2f}")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
