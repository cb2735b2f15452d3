"""(2b) The pipeline's CPU budget: each step it adds to the raw loop, timed alone.

The raw loop (decode, features, SDK classify) is the baseline. Every step the pipeline adds
is then run on its own, in this process, on the same images: the producer's scan, hash,
registration, enqueue (bytes into Redis, one message per batch) and the worker's batch
bookkeeping (`begin_batch`, fetching and deleting the bytes, the upsert). Each figure is CPU
milliseconds per image, this process's and the model's or Redis's, median over repeats. The
sum of the added steps, set against the raw loop, is the best ratio the pipeline could reach
on one machine if nothing else cost anything: Celery's dispatch, thread hand-offs and the
processes contending for the same cores come on top. Run:
    .venv/bin/python -m bench.overhead [--images N] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import redis
from sqlalchemy import delete, select, update

from allscreen.blobs import BlobStore
from allscreen.db import ensure_schema, make_engine
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.messages import Batch, ImageItem
from allscreen.results import ResultRow, upsert_results
from allscreen.schema import STATUS_DONE, Image, Result
from allscreen.settings import Settings
from bench.common import images, machine, median, model_session
from producer.archive import scan
from producer.enqueue import Enqueuer, Publisher
from producer.recent import RecentBytes
from producer.register import get_or_create_run, hash_file, register
from producer.submit import _celery_app
from worker.decode import decode_bgr
from worker.store import begin_batch

BATCH = 128


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid`."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _clock(out: list[float], images: int) -> Iterator[None]:
    """Append the CPU ms per image this process spent inside the block."""
    c0 = time.process_time()
    yield
    out.append((time.process_time() - c0) * 1000 / images)


class Budget:
    """The steps, each timed `repeats` times on `n` images."""

    def __init__(
        self, limit: int | None, workdir: Path, redis_server: EmbeddedRedis, pid: int
    ) -> None:
        self.redis_pid = pid
        self.settings = Settings(
            broker_url=redis_server.url,
            database_url=f"sqlite:///{workdir / 'budget.db'}",
        )
        self.engine = make_engine(self.settings.database_url)
        ensure_schema(self.engine, create=True)
        self.archive = workdir / "archive"
        files = images(limit)
        for p in files:
            (self.archive / p.parent.name).mkdir(parents=True, exist_ok=True)
            (self.archive / p.parent.name / p.name).write_bytes(p.read_bytes())
        self.n = len(files)  #: figures are per file (a few files are duplicates)
        self.locations = [f.location for f in scan([os.fsencode(self.archive)], "none")]
        self.client = redis.Redis.from_url(redis_server.url)
        self.blobs = BlobStore(self.client)
        self.figures: dict[str, list[float]] = {}

    def time(self, name: str, step: Callable[[], object], *, redis_share: bool = False) -> None:
        """Run `step` once under the clock, adding its figure to `name`; with `redis_share`,
        the Redis server's CPU during the step too, as `Redis server: name`."""
        r0 = _cpu(self.redis_pid)
        with _clock(self.figures.setdefault(name, []), self.n):
            step()
        if redis_share:
            server = (_cpu(self.redis_pid) - r0) * 1000 / self.n
            self.figures.setdefault(f"Redis server: {name.split(': ', 1)[1]}", []).append(server)

    def producer(self) -> int:
        """Scan, hash, register and enqueue, as `submit` does; the registered run's id."""
        self.time("producer: scan", lambda: list(scan([os.fsencode(self.archive)], "none")))
        self.time("producer: read + sha256", lambda: [hash_file(x) for x in self.locations])
        run_id, _ = get_or_create_run(self.engine, f"budget-{time.time_ns()}", pin=None)
        recent = RecentBytes()
        found = list(scan([os.fsencode(self.archive)], "none"))
        self.client.flushdb()
        queue = self.settings.queue
        with Publisher(_celery_app(self.settings), self.settings) as pub:

            def devices_take_all() -> None:  # nothing consumes here: empty the queue instead
                self.client.delete(queue)

            enq = Enqueuer(
                self.engine,
                pub,
                run_id,
                self.settings,
                pin=None,
                only_new=True,
                idle=devices_take_all,
                recent=recent,
            )

            def submit_steps() -> None:  # `submit`: enqueue between register chunks, then all
                def scanned(_: object) -> None:
                    devices_take_all()
                    enq.pump(block=False)

                register(self.engine, run_id, found, on_progress=scanned, keep=recent)
                enq.pump(block=True)

            self.time(
                "producer: register + enqueue, as `submit` (read, hash, INSERT, bytes and "
                "message to Redis, UPDATE)",
                submit_steps,
                redis_share=True,
            )
        return run_id

    def worker(self, run_id: int) -> None:
        """The worker's per-batch steps on the run's images, in batches of BATCH."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(Image.id, Image.sha256, Image.location).where(Image.run_id == run_id)
            ).all()
        datas = {i: Path(os.fsdecode(loc)).read_bytes() for i, _, loc in rows}
        ids = [int(i) for i, _, _ in rows]
        chunks = [ids[k : k + BATCH] for k in range(0, len(ids), BATCH)]
        keys = {i: f"budget:{run_id}:{i}" for i in ids}
        self.blobs.put([(keys[i], datas[i]) for i in ids])
        message = [
            Batch(
                run_id, time.time(), tuple(ImageItem(i, "0" * 64, blob=keys[i]) for i in c)
            ).to_message()
            for c in chunks
        ]
        self.time("worker: parse batch messages", lambda: [Batch.from_message(m) for m in message])

        def fetch_and_drop() -> None:
            for c in chunks:
                self.blobs.get([keys[i] for i in c])
                self.blobs.delete([keys[i] for i in c])

        self.time("worker: MGET + UNLINK the bytes", fetch_and_drop, redis_share=True)
        self.time(
            "worker: begin_batch (count delivery, find done)",
            lambda: [begin_batch(self.engine, run_id, c) for c in chunks],
        )
        stamp = datetime.now(UTC)

        def rows_for(c: list[int]) -> list[ResultRow]:
            return [
                ResultRow(
                    run_id,
                    i,
                    STATUS_DONE,
                    "budget",
                    stamp,
                    label="Benign",
                    confidence=0.9,
                    scores='{"Benign": 0.9, "Early": 0.05, "Pre": 0.03, "Pro": 0.02}',
                    model_sha256="0" * 64,
                    model_name="m",
                    model_version="2",
                    queued_at=stamp,
                    started_at=stamp,
                    decode_ms=0.5,
                    inference_ms=0.4,
                )
                for i in c
            ]

        def upsert_all() -> None:
            for c in chunks:
                upsert_results(self.engine, rows_for(c))

        self.time("worker: build rows + upsert results", upsert_all)
        with self.engine.begin() as conn:
            conn.execute(delete(Result).where(Result.run_id == run_id))
            conn.execute(update(Image).where(Image.run_id == run_id).values(deliveries=0))


def raw_loop(datas: list[bytes], out: dict[str, list[float]], n: int) -> None:
    """The raw loop's CPU per image: this process (decode, features, SDK) and the model."""
    session = model_session()
    _ = session.info
    runner = session._runner
    pid = getattr(runner, "pid", None)
    assert pid is not None
    m0 = _cpu(pid)
    with _clock(out.setdefault("raw loop: decode + features + SDK (client)", []), n):
        for d in datas:
            bgr = decode_bgr(d, max_bytes=1 << 25, max_pixels=1 << 25)
            session.classify(session.features_bgr(bgr))
    out.setdefault("raw loop: model process", []).append((_cpu(pid) - m0) * 1000 / n)
    session.close()


def main() -> None:
    """Print the budget table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=None, help="default: the whole image set")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(
        f"# pipeline CPU budget, {args.images or 'all'} images, {args.repeats} repeats; {machine()}"
    )
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as server:
        assert server._proc is not None
        budget = Budget(args.images, Path(tmp), server, server._proc.pid)
        datas = [Path(os.fsdecode(x)).read_bytes() for x in budget.locations]
        for _ in range(args.repeats):
            raw_loop(datas, budget.figures, budget.n)
            budget.worker(budget.producer())
    figures = {k: median(v) for k, v in budget.figures.items() if any(v)}
    raw = sum(v for k, v in figures.items() if k.startswith("raw loop"))
    partial = ("producer: read + sha256",)  # inside the register step already
    added = sum(v for k, v in figures.items() if not k.startswith("raw") and k not in partial)
    print("| step | CPU ms/image |")
    print("|---|---|")
    for name, value in figures.items():
        print(f"| {name} | {value:.3f} |")
    print(f"| **raw loop total** | **{raw:.3f}** |")
    print(
        "| **added by the pipeline** (all but the raw loop and the read + sha256 line) | "
        f"**{added:.3f}** |"
    )
    print(
        f"best ratio with nothing else on top: {raw:.3f} / {raw + added:.3f} = "
        f"{raw / (raw + added):.2f}; 0.90 needs the added steps at most {raw / 9:.3f} ms/image"
    )


if __name__ == "__main__":
    main()
