"""(3b) Remote devices: the emulated fleet of section 3 with a network between devices and server.

The producer, Redis (embedded, throwaway) and PostgreSQL (a throwaway database) are the server
side and talk to each other directly. Each device reaches Redis and PostgreSQL only through a
delaying proxy (`bench.netdelay`, one process per service, shared by all devices: one link
between the lab's server and its devices), which adds the round trip given by `--rtt-ms` and
limits no bandwidth; 0 means loopback, no proxy. As in section 3 every inference takes 13 ms
and the ideal is N / 0.013 images/s; one device alone (the SDK classifying prepared features
back to back, no queue, no database) is measured in the same run. Run:
    .venv/bin/python -m bench.remote_fleet --devices 1 8 16 --rtt-ms 0 2 20 --repeats 3
Short run: `--devices 8 --rtt-ms 20 --repeats 1 --limit 1000` (1,000 images per device).
`--remote broker` adds the round trip to Redis only, the devices' SQL staying at loopback:
the most that sending results back through the broker to one recorder near the database could
gain. Extra arguments after `--` go to every device's Celery worker
(`-- --prefetch-multiplier 2`). Besides rates, it prints what a loaded machine hardly
changes: the round trips devices start per batch (counted by the proxies) and the median time
a device's model waits between two batches.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Engine, select

from allscreen.db import ensure_schema, make_engine
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.process import stop_group
from allscreen.schema import Result, Run
from allscreen.settings import Settings
from bench.common import machine, median, replicate
from bench.fleet import EMULATION, device_alone, start_devices, timed_run, warm_up
from bench.result_writes import PG_ADMIN_URL, postgres_database


@dataclass(frozen=True, slots=True)
class RunFigures:
    """One timed run: its rate, per-device inference latencies and the proxies' CPU."""

    rate: float  #: images/s from submit to the last result
    images: int
    latencies: dict[str, tuple[float | None, float | None]]  #: device → (p50, p95) ms
    proxy_cpu: float  #: CPU seconds per second of the timed run, both proxies together
    gap_ms: float | None  #: median wait of a device's model between two of its batches
    trips_per_batch: tuple[float, float] | None  #: round trips per batch to (Redis, SQL)


def with_port(url: str, port: int) -> str:
    """`url` with its port replaced (credentials, path and query kept)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user + '@' if user else ''}127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def delayed(url: str, rtt_ms: float) -> Iterator[tuple[str, subprocess.Popen[bytes] | None]]:
    """(URL reaching the service of `url` through a delaying proxy process, the process); at
    0 ms, `url` itself and no process."""
    if rtt_ms <= 0:
        yield url, None
        return
    parts = urlsplit(url)
    target = f"{parts.hostname}:{parts.port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.netdelay", "--target", target, "--rtt-ms", str(rtt_ms)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        line = _line(proc)
        if not line.startswith("listening on "):
            sys.exit(f"the delaying proxy for {target} did not start: {line!r}")
        yield with_port(url, int(line.split()[-1])), proc
    finally:
        stop_group(proc, grace=5)


def _line(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().decode()


def round_trips(proxy: subprocess.Popen[bytes] | None) -> int:
    """Round trips the devices have started through `proxy` so far (`bench.netdelay`)."""
    if proxy is None:
        return 0
    proxy.send_signal(signal.SIGUSR1)
    return int(_line(proxy).split()[-1])


def cpu_of(procs: Sequence[subprocess.Popen[bytes]]) -> float:
    """User + system CPU seconds spent so far by the processes `procs`."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in procs:
        with open(f"/proc/{proc.pid}/stat") as fh:
            stat = fh.read().rsplit(")", 1)[1].split()
        total += (int(stat[11]) + int(stat[12])) / hz
    return total


def batch_gaps(engine: Engine, run_name: str = "fleet") -> tuple[float | None, int]:
    """(Median time a device's model sits idle between two of its batches, in ms; batches).

    The time runs from the last result of one batch to the first image of the next being
    prepared: writing results, acknowledging, fetching the next batch and its images. It is
    the per-batch cost the rate pays, seen directly.

    A batch's rows share its `queued_at`, which tells the batches apart.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            select(Result.device, Result.queued_at, Result.started_at, Result.finished_at)
            .join(Run, Run.id == Result.run_id)
            .where(Run.name == run_name)
        ).all()
    spans: dict[tuple[str, object], tuple[datetime, datetime]] = {}
    for device, queued, started, finished in rows:
        if started is None:  # a row written without preparing its image (failed before)
            continue
        first, last = spans.get((device, queued), (started, finished))
        spans[(device, queued)] = (min(first, started), max(last, finished))
    by_device: dict[str, list[tuple[datetime, datetime]]] = {}
    for (device, _), span in spans.items():
        by_device.setdefault(device, []).append(span)
    gaps = [
        (nxt[0] - prev[1]).total_seconds() * 1000
        for spans_of in by_device.values()
        for prev, nxt in itertools.pairwise(sorted(spans_of))
    ]
    return (median(gaps) if gaps else None), len(spans)


def remote_run(
    n: int,
    rtt_ms: float,
    args: argparse.Namespace,
    workdir: Path,
    archive: Path,
) -> RunFigures:
    """One timed run of `n` devices reaching Redis (and PostgreSQL, unless `args.remote` is
    `broker`) `rtt_ms` away."""
    db_rtt = rtt_ms if args.remote == "both" else 0.0
    redis = EmbeddedRedis().start()
    try:
        with (
            postgres_database(args.pg_admin_url) as db_url,
            delayed(redis.url, rtt_ms) as (device_broker, broker_proxy),
            delayed(db_url, db_rtt) as (device_db, db_proxy),
        ):
            settings = Settings(
                broker_url=redis.url, database_url=db_url, batch_size=args.batch_size
            )
            engine = make_engine(db_url)
            ensure_schema(engine, create=True)
            device = settings.model_copy(
                update={"broker_url": device_broker, "database_url": device_db}
            )
            celery_args = ("--pool", args.pool, *args.celery_args)
            procs = start_devices(device, n, args.delay_ms, args.emulation, celery_args)
            try:
                warm_up(settings, n, workdir)
                proxies = [p for p in (broker_proxy, db_proxy) if p is not None]
                cpu0, t0 = cpu_of(proxies), time.monotonic()
                trips0 = round_trips(broker_proxy), round_trips(db_proxy)
                rate, lat, count = timed_run(settings, engine, archive)
                cpu = (cpu_of(proxies) - cpu0) / (time.monotonic() - t0)
                trips = round_trips(broker_proxy) - trips0[0], round_trips(db_proxy) - trips0[1]
                gap, batches = batch_gaps(engine)
            finally:
                for proc in procs:
                    stop_group(proc)
                engine.dispose()
    finally:
        redis.stop()
    per_batch = (trips[0] / batches, trips[1] / batches) if proxies and batches else None
    return RunFigures(rate, count, lat, cpu, gap, per_batch)


def spread(figures: RunFigures) -> str:
    """Per-device p50 and p95 inference ms as ranges over the devices: `13-14 / 14-15`."""
    p50s = [p for p, _ in figures.latencies.values() if p is not None]
    p95s = [p for _, p in figures.latencies.values() if p is not None]
    if not p50s or not p95s:
        return "-"

    def span(xs: list[float]) -> str:
        lo, hi = round(min(xs)), round(max(xs))
        return f"{lo}" if lo == hi else f"{lo}-{hi}"

    return f"{span(p50s)} / {span(p95s)}"


def main() -> None:
    """Print, per round trip and fleet size, the median rate against ideal and one device."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--rtt-ms", type=float, nargs="+", default=[0.0, 2.0, 20.0])
    ap.add_argument("--delay-ms", type=float, default=13.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=Settings().batch_size)
    ap.add_argument("--pool", default="prefork", help="Celery pool of each device's worker")
    ap.add_argument("--emulation", choices=sorted(EMULATION), default="latency")
    ap.add_argument(
        "--limit",
        type=int,
        default=None,
        help="images of the shared set per device (default: all of them, one copy per device)",
    )
    ap.add_argument(
        "--remote",
        choices=["both", "broker"],
        default="both",
        help="what the round trip is added to: both services, or Redis only (SQL at loopback: "
        "the bound for results sent back through the broker to a recorder near the database)",
    )
    ap.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    ap.add_argument("celery_args", nargs="*", help="after --: extra arguments for Celery")
    args = ap.parse_args()
    extra = f", celery {' '.join(args.celery_args)}" if args.celery_args else ""
    print(
        f"# remote fleet: {args.delay_ms:g} ms/inference ({args.emulation}), batch "
        f"{args.batch_size}, pool {args.pool}{extra}, PostgreSQL, a delaying proxy per service "
        f"shared by all devices, round trip added to {args.remote}; {machine()}"
    )
    alone = device_alone(args.delay_ms, emulation=args.emulation)
    print(f"one device alone: {alone:.1f} img/s = {alone * args.delay_ms / 1000:.2f} of ideal")
    print(
        "| RTT ms | devices | images | ideal img/s | median img/s | ratio to ideal | "
        "ratio to N devices alone | runs | device p50/p95 ms | gap between batches ms | "
        "round trips per batch, Redis + SQL | proxy CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for rtt in args.rtt_ms:
            for n in args.devices:
                archive = replicate(Path(tmp), n, args.limit)
                runs = [remote_run(n, rtt, args, Path(tmp), archive) for _ in range(args.repeats)]
                rate = median([r.rate for r in runs])
                ideal = n / (args.delay_ms / 1000)
                cpu = median([r.proxy_cpu for r in runs])
                gaps = [r.gap_ms for r in runs if r.gap_ms is not None]
                trips = [r.trips_per_batch for r in runs if r.trips_per_batch is not None]
                per_batch = (
                    f"{median([t[0] for t in trips]):.1f} + {median([t[1] for t in trips]):.1f}"
                    if trips
                    else "-"
                )
                print(
                    f"| {rtt:g} | {n} | {runs[-1].images} | {ideal:.0f} | {rate:.0f} | "
                    f"{rate / ideal:.2f} | {rate / (n * alone):.2f} | "
                    f"{' '.join(f'{r.rate:.0f}' for r in runs)} | {spread(runs[-1])} | "
                    f"{f'{median(gaps):.0f}' if gaps else '-'} | "
                    f"{per_batch} | "
                    f"{f'{cpu:.0%}' if rtt > 0 else '-'} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
