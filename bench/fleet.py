"""(3) A fleet of emulated Jetson Nanos: N workers, each one process with a 13 ms model.

By default every inference of the reference runner takes 13 ms (ALLSCREEN_EIM_LATENCY_MS: the
network's own fraction of a millisecond is inside the 13), like the original project's Nano;
`--emulation delay` instead adds 13 ms to it (ALLSCREEN_EIM_DELAY_MS), a slightly slower device.
The ideal is N / 0.013 images/s. Run:
    .venv/bin/python -m bench.fleet [--devices 1 2 4 8] [--delay-ms 13] [--repeats R]
                                    [--emulation latency|delay]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path

from sqlalchemy import Engine, func, select

from allscreen.db import ensure_schema, make_engine
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.process import stop_group
from allscreen.schema import Result
from allscreen.settings import Settings
from bench.common import DATA, images, machine, median, model_session, replicate, start_worker
from producer.submit import submit, watch
from readout.queries import device_stats
from worker.decode import decode_bgr

#: How the runner emulates a slow device: each inference takes at least the time (latency), or
#: the time is added to the network's own (delay).
EMULATION = {"latency": "ALLSCREEN_EIM_LATENCY_MS", "delay": "ALLSCREEN_EIM_DELAY_MS"}


def fleet_run(
    n: int,
    delay_ms: float,
    batch_size: int,
    workdir: Path,
    pool: str = "prefork",
    archive: Path = DATA,
    emulation: str = "latency",
) -> tuple[float, dict[str, tuple[float | None, float | None]], int]:
    """(images/s, {device: (p50 ms, p95 ms)}, images) for one timed run of `n` devices."""
    redis = EmbeddedRedis().start()
    settings = Settings(
        broker_url=redis.url,
        batch_size=batch_size,
        database_url=f"sqlite:///{workdir / f'fleet-{time.time_ns()}.db'}",
    )
    engine = make_engine(settings.database_url)
    ensure_schema(engine, create=True)
    procs = start_devices(settings, n, delay_ms, emulation, ("--pool", pool))
    try:
        warm_up(settings, n, workdir)
        return timed_run(settings, engine, archive)
    finally:
        for proc in procs:
            stop_group(proc)
        redis.stop()


def start_devices(
    settings: Settings, n: int, delay_ms: float, emulation: str, celery_args: Sequence[str]
) -> list[subprocess.Popen[bytes]]:
    """`n` emulated devices, nano-1 … nano-N, one worker process each, reaching `settings`."""
    env = {EMULATION[emulation]: str(delay_ms)}
    return [
        start_worker(settings, f"nano-{i + 1}", 1, env=env, celery_args=celery_args)
        for i in range(n)
    ]


def warm_up(settings: Settings, n: int, workdir: Path) -> None:
    """One batch per device, untimed: models started, connections open, code paths warm.

    Drawn from every class: Benign alone has 428 images, fewer than 8 devices' batches, and a
    device left without a warm-up batch would start its model inside the timed run.
    """
    warm = workdir / f"warm-{time.time_ns()}"
    warm.mkdir()
    for i, p in enumerate(images(n * settings.batch_size)):
        (warm / f"{i}.jpg").write_bytes(p.read_bytes() + b"warm")
    submit([warm], settings, run_name="warm-up", err=io.StringIO())
    watch("warm-up", settings, err=io.StringIO())


def timed_run(
    settings: Settings, engine: Engine, archive: Path
) -> tuple[float, dict[str, tuple[float | None, float | None]], int]:
    """Submit `archive` and wait for it: (images/s from submit to the last result, {device:
    (p50, p95 inference ms)}, images)."""
    t0 = time.time()
    done = submit([archive], settings, run_name="fleet", err=io.StringIO())
    watch("fleet", settings, err=io.StringIO())
    with engine.connect() as conn:
        last = conn.scalar(select(func.max(Result.finished_at)).where(Result.run_id == done.run_id))
    assert last is not None
    end = last.timestamp() if last.tzinfo else last.replace(tzinfo=UTC).timestamp()
    rate = done.registered.new / (end - t0)
    lat = {d.device: (d.p50_ms, d.p95_ms) for d in device_stats(engine, done.run_id)}
    return rate, lat, done.registered.new


def device_alone(delay_ms: float, count: int = 300, emulation: str = "latency") -> float:
    """Images/s of one emulated device on its own: the SDK classifying features prepared in
    advance, back to back, with no queue, no database and no decoding. The most a device's
    worker could reach; the fleet's ratio to it is what the orchestration costs."""
    variable = EMULATION[emulation]
    os.environ[variable] = str(delay_ms)
    try:
        session = model_session()
        feats = [
            session.features_bgr(decode_bgr(p.read_bytes(), max_bytes=1 << 25, max_pixels=1 << 25))
            for p in images(count)
        ]
        t0 = time.perf_counter()
        for f in feats:
            session.classify(f)
        rate = len(feats) / (time.perf_counter() - t0)
        session.close()
        return rate
    finally:
        del os.environ[variable]


def main() -> None:
    """Print, for each fleet size, the median rate, its ratio to ideal and device latencies."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--delay-ms", type=float, default=13.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=Settings().batch_size)
    ap.add_argument("--pool", default="prefork", help="Celery pool of each device's worker")
    ap.add_argument(
        "--emulation",
        choices=sorted(EMULATION),
        default="latency",
        help="latency: each inference takes --delay-ms in all; delay: --delay-ms is added to it",
    )
    ap.add_argument(
        "--copies",
        type=int,
        default=None,
        help="copies of the image set to screen (default: one per device, so every run "
        "lasts about 35 s at the ideal rate and start-up is not most of it)",
    )
    args = ap.parse_args()
    print(
        f"# fleet of emulated Nanos, {args.delay_ms:g} ms/inference ({args.emulation}), batch "
        f"{args.batch_size}, pool {args.pool}; {machine()}"
    )
    alone = device_alone(args.delay_ms, emulation=args.emulation)
    print(
        f"one device alone (no queue, no database, no decoding): {alone:.1f} img/s = "
        f"{alone * args.delay_ms / 1000:.2f} of its ideal {1000 / args.delay_ms:.1f}"
    )
    print(
        "| devices | images | ideal img/s | median img/s | ratio to ideal | ratio to N devices "
        "alone | runs | device p50/p95 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.devices:
            archive = replicate(Path(tmp), args.copies or n)
            runs = [
                fleet_run(
                    n,
                    args.delay_ms,
                    args.batch_size,
                    Path(tmp),
                    args.pool,
                    archive,
                    args.emulation,
                )
                for _ in range(args.repeats)
            ]
            rates = [r for r, _, _ in runs]
            ideal = n / (args.delay_ms / 1000)
            lat = runs[-1][1]
            lats = ", ".join(
                f"{d} {p50:.0f}/{p95:.0f}"
                for d, (p50, p95) in sorted(lat.items())
                if p50 is not None and p95 is not None
            )
            print(
                f"| {n} | {runs[-1][2]} | {ideal:.0f} | {median(rates):.0f} | "
                f"{median(rates) / ideal:.2f} | {median(rates) / (n * alone):.2f} | "
                f"{' '.join(f'{r:.0f}' for r in rates)} | {lats} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
