"""(4e) Central capacity: each central part's rate per image, and Nano-class devices served.

For each image size (23 KB: the shared images; 1 MB and 5 MB: seeded random bytes of that
size, where only bytes matter: hashing, Redis, SQL), each database (SQLite, PostgreSQL) and
each transport (`bytes` ships the image through Redis, `path` only its id and path), on a
fresh database and an embedded Redis, in this process:

1. registration: `producer.register.register` of the folder (scan, sha256, insert), as
   `submit` runs it, keeping the hashed bytes for the enqueuer (`producer.recent`);
2. enqueue: `producer.enqueue` of every pending image with no device and a publisher that
   never waits for room, so nothing makes the producer wait (its own ceiling);
3. devices: `--workers` stub workers (`bench/stub.eim`: the real `.eim` protocol, a constant
   classifier) take every batch and write every result. Random bytes do not decode, so the
   1 MB and 5 MB images end as `failed` rows: the same Redis and SQL traffic as `done` ones.

Redis `INFO stats`, `commandstats` and `cpu` are read before and after steps 2 and 3: bytes
in and out, commands and Redis CPU per image. Result rows/s come from `bench.result_writes`
(the production `upsert_results`, 128 rows per call). Then, for a Nano-class device at
`--device-ms` (13 ms) per image, devices served by one part = its images/s x 0.013.

Redis runs on loopback here, so its network is not measured: images/s on the wire are worked
out for an assumed full-duplex link (`--link-gbit`, default 1 Gbit/s each way) from the
measured bytes per image in the busier direction (into Redis, or out of it).
Files were just written, so registration reads them from the page cache: a cold archive on
disk adds its read bandwidth as one more part. Run:
    .venv/bin/python -m bench.capacity [--scale 1] [--repeats 1] [--workers 1]
        [--databases sqlite postgresql] [--link-gbit 1] [--result-rows 20000]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis

from allscreen.db import ensure_schema, make_engine
from allscreen.defaults import REPO_ROOT
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.process import stop_group
from allscreen.settings import Settings
from bench.common import images, machine, median, start_worker
from bench.result_writes import PG_ADMIN_URL, database, measure
from producer.archive import scan
from producer.enqueue import Enqueuer, Publisher
from producer.recent import RecentBytes
from producer.register import get_or_create_run, register
from producer.submit import watch
from worker.app import make_app

STUB_MODEL = REPO_ROOT / "bench" / "stub.eim"
#: Image sizes: bytes per image (0: the shared images) and images per run at `--scale 1`,
#: about 20-150 MB per run so that a run takes seconds and Redis holds it all at once.
SIZES: dict[str, tuple[int, int]] = {
    "23 KB": (0, 1000),
    "1 MB": (1 << 20, 100),
    "5 MB": (5 << 20, 30),
}
SEED = 20261202  #: seeds the random bytes of the 1 MB and 5 MB images


@dataclass(slots=True)
class Redis:
    """Redis counters: network bytes in and out, commands, CPU seconds."""

    net_in: float = 0.0
    net_out: float = 0.0
    calls: float = 0.0
    cpu: float = 0.0

    def minus(self, other: Redis) -> Redis:
        """The difference of two readings."""
        return Redis(
            self.net_in - other.net_in,
            self.net_out - other.net_out,
            self.calls - other.calls,
            self.cpu - other.cpu,
        )

    @property
    def wire(self) -> float:
        """Bytes in and out."""
        return self.net_in + self.net_out

    def per(self, n: int) -> Redis:
        """Per image of `n`."""
        return Redis(self.net_in / n, self.net_out / n, self.calls / n, self.cpu / n)


def read_redis(client: Any) -> Redis:
    """One reading of Redis' own counters (INFO stats, commandstats, cpu)."""
    stats, cmds, cpu = client.info("stats"), client.info("commandstats"), client.info("cpu")
    calls = sum(int(v["calls"]) for k, v in cmds.items() if k.startswith("cmdstat_"))
    return Redis(
        float(stats["total_net_input_bytes"]),
        float(stats["total_net_output_bytes"]),
        float(calls),
        float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
    )


@dataclass(slots=True)
class Measured:
    """One run of one size, database and transport."""

    register_rate: float  #: images/s
    enqueue_rate: float  #: images/s
    producer: Redis  #: per image, while enqueueing
    devices: Redis  #: per image, while the devices took and finished the batches

    @property
    def wire(self) -> float:
        """Redis bytes in and out per image, producer and devices."""
        return self.producer.wire + self.devices.wire

    @property
    def busier_direction(self) -> float:
        """Redis bytes per image into or out of Redis, whichever is more: a full-duplex link
        carries each direction at its rate."""
        p, d = self.producer, self.devices
        return max(p.net_in + d.net_in, p.net_out + d.net_out)

    def row(self, kind: str, label: str, transport: str, writes: float) -> str:
        """This run as a row of the measured table."""
        p, d = self.producer, self.devices
        return (
            f"| {kind} | {label} | {transport} | {self.register_rate:.0f} | "
            f"{self.enqueue_rate:.0f} | {self.wire:,.0f} ({p.wire:,.0f}; {d.wire:,.0f}) | "
            f"{p.calls + d.calls:.1f} | {(p.cpu + d.cpu) * 1e6:.0f} | {writes:.0f} |"
        )


class Unbounded(Publisher):
    """A publisher that never waits for room: the producer's own ceiling. The window stays at
    its default, so batches are cut as `submit` cuts them (`producer.enqueue.Enqueuer`)."""

    def wait_for_room(self, idle: Callable[[], None]) -> None:
        """Never wait."""
        del idle


def make_folder(root: Path, size: int, n: int) -> Path:
    """`n` images: the shared ones (size 0) or seeded random bytes of `size`."""
    root.mkdir(parents=True)
    if size == 0:
        for i, src in enumerate(images(n)):
            shutil.copy(src, root / f"img-{i:06d}.jpg")
        return root
    rng = np.random.default_rng(SEED + size)
    for i in range(n):
        (root / f"img-{i:06d}.jpg").write_bytes(rng.bytes(size))
    return root


def run_one(kind: str, folder: Path, transport: str, workers: int, workdir: Path) -> Measured:
    """Register, enqueue, then let `workers` stub devices finish; measured as above."""
    with database(kind, workdir, PG_ADMIN_URL) as url, EmbeddedRedis() as broker:
        settings = Settings(
            broker_url=broker.url,
            database_url=url,
            model=STUB_MODEL,
            transport=transport,  # type: ignore[arg-type]
        )
        engine = make_engine(url)
        client = redis.Redis.from_url(broker.url)
        procs = []
        try:
            ensure_schema(engine, create=True)
            run_id, _ = get_or_create_run(engine, "capacity", pin=None)
            recent = RecentBytes() if transport == "bytes" else None
            t0 = time.perf_counter()
            reg = register(engine, run_id, scan([bytes(folder)], "none"), keep=recent)
            t1 = time.perf_counter()
            r0 = read_redis(client)
            with Unbounded(make_app(settings), settings) as pub:
                enq = Enqueuer(
                    engine, pub, run_id, settings, pin=None, only_new=True, recent=recent
                )
                t2 = time.perf_counter()
                enq.pump(block=True)
                t3 = time.perf_counter()
            r1 = read_redis(client)
            env = {"ALLSCREEN_EIM_PYTHON": sys.executable}
            for i in range(workers):
                log = workdir / f"worker-{kind}-{transport}-{i}-{time.time_ns()}.log"
                procs.append(start_worker(settings, f"stub-{i + 1}", 1, env=env, log=log))
            watch("capacity", settings, err=io.StringIO())
            r2 = read_redis(client)
            n = reg.files
            assert reg.new == n and enq.stats.images + enq.stats.failed == n, (reg, enq.stats)
            return Measured(n / (t1 - t0), n / (t3 - t2), r1.minus(r0).per(n), r2.minus(r1).per(n))
        finally:
            for p in procs:
                stop_group(p)
            client.close()
            engine.dispose()


def devices(rate: float, device_ms: float) -> float:
    """Nano-class devices one part keeps busy at `rate` images/s."""
    return rate * device_ms / 1000


def main() -> None:
    """Measure every part, print the measured table, the derived table and the first limit."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="images per run, x the defaults")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--link-gbit", type=float, default=1.0, help="assumed Redis link")
    ap.add_argument("--device-ms", type=float, default=13.0, help="a device's ms per image")
    ap.add_argument("--result-rows", type=int, default=20_000)
    args = ap.parse_args()
    print(f"# central capacity; {machine()}; {time.strftime('%Y-%m-%d %H:%M')}")
    tmp = Path(tempfile.mkdtemp(prefix="allscreen-capacity-", dir="/tmp"))
    link = args.link_gbit * 1e9 / 8  # bytes/s
    try:
        writes = {
            kind: median(
                [
                    measure(kind, "batched", args.result_rows, tmp, PG_ADMIN_URL).rate
                    for _ in range(args.repeats)
                ]
            )
            for kind in args.databases
        }
        print(
            "\n| database | size | transport | register img/s | enqueue img/s | Redis in+out "
            "B/img (producer; devices) | Redis cmds/img | Redis CPU µs/img | result rows/s |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        limits: list[tuple[str, str, list[tuple[str, float]]]] = []
        for label in args.sizes:
            size, count = SIZES[label]
            folder = make_folder(
                tmp / label.replace(" ", ""), size, max(4, round(count * args.scale))
            )
            for kind in args.databases:
                got = {
                    t: [run_one(kind, folder, t, args.workers, tmp) for _ in range(args.repeats)]
                    for t in ("bytes", "path")
                }
                med = {t: _median(ms) for t, ms in got.items()}
                for t, m in med.items():
                    print(m.row(kind, label, t, writes[kind]))
                b = med["bytes"]
                parts = [
                    ("registration, one producer", b.register_rate),
                    ("enqueue (bytes), one producer", b.enqueue_rate),
                    ("enqueue (path), one producer", med["path"].enqueue_rate),
                    (
                        f"Redis link at {args.link_gbit:g} Gbit/s (assumed), bytes",
                        link / b.busier_direction,
                    ),
                    ("Redis CPU (one core), bytes", 1 / max(b.producer.cpu + b.devices.cpu, 1e-9)),
                    (f"{kind} result writes", writes[kind]),
                ]
                limits.append((kind, label, parts))
        _derived(limits, args.device_ms)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _median(ms: list[Measured]) -> Measured:
    def med(f: Any) -> float:
        return median([f(m) for m in ms])

    def red(side: str) -> Redis:
        return Redis(
            *(
                med(lambda m, a=a: getattr(getattr(m, side), a))
                for a in ("net_in", "net_out", "calls", "cpu")
            )
        )

    return Measured(
        med(lambda m: m.register_rate),
        med(lambda m: m.enqueue_rate),
        red("producer"),
        red("devices"),
    )


def _derived(limits: list[tuple[str, str, list[tuple[str, float]]]], device_ms: float) -> None:
    """Devices served by each part, and the part that gives out first (bytes transport)."""
    factor = device_ms / 1000
    print(f"\nDevices served at {device_ms:g} ms per image (a part's images/s x {factor:g}):\n")
    print("| database | size | part | images/s | devices |")
    print("|---|---|---|---|---|")
    for kind, label, parts in limits:
        for name, rate in parts:
            print(f"| {kind} | {label} | {name} | {rate:,.0f} | {devices(rate, device_ms):,.0f} |")
    print(
        "\nFirst to give out (bytes transport; 'path' enqueue left out, it needs a shared mount):"
    )
    for kind, label, parts in limits:
        name, rate = min((p for p in parts if "(path)" not in p[0]), key=lambda p: p[1])
        served = devices(rate, device_ms)
        print(f"- {kind}, {label}: {name}, {served:,.0f} devices ({rate:,.0f} img/s)")


if __name__ == "__main__":
    main()
