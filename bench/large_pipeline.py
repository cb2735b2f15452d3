"""(9) Large images through the pipeline: bytes through Redis, CPU per role, the fleet's rate.

For each kind of large image (bench.large_set), an archive of the `test` split's first images
upscaled to that kind is screened by `--devices` emulated Nanos (one worker process each, the
reference model with every inference taking `--latency-ms`), once per mode, modes alternating within
each repeat: the transport (`path`, `bytes`, or `bytes` with the producer shipping reduced
copies), the worker's decode (full or reduced) and its decode threads. Each run starts a fresh
embedded Redis, SQLite database and worker, warmed up on a few small images first. Per image
it prints: bytes into and out of Redis (its own counters), CPU ms per role (worker, model,
producer, Redis; only this benchmark's own processes), the worker's median time to prepare
an image (decode + resize), and the rate against the fleet's ideal (devices / latency) and
against `bytes/full` in the same repeat. `--images` is per device: each device's share is
images of its own.
Run:
    nice -n 5 .venv/bin/python -m bench.large_pipeline [--images 96] [--repeats 2] [--devices 1]
                                                        [--kinds 5mp-jpeg ...] [--modes ...]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, select

from allscreen.db import ensure_schema, make_engine
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.process import stop_group
from allscreen.schema import Result
from allscreen.settings import Settings
from bench.common import DATA, cpu_by_role, cpu_seconds, machine, median, start_worker
from bench.large_set import KINDS, split_images, write_large_set
from producer.submit import submit, watch

#: Modes: settings that differ from the defaults (bytes transport, reduced decode, one decode
#: thread per core).
MODES: dict[str, dict[str, Any]] = {
    "path/full": {"transport": "path", "reduced_decode": False},
    "path/reduced": {"transport": "path"},
    "bytes/full": {"reduced_decode": False},
    "bytes/full/1 thread": {"reduced_decode": False, "decode_threads": 1},
    "bytes/reduced": {},
    "bytes/reduced/1 thread": {"decode_threads": 1},
    "bytes/shipped 192": {"ship_side": 192},
}
BASELINE = "bytes/full"
WARM_IMAGES = 8  #: small shared images screened first, so the model is running


def descendants(root: int) -> set[int]:
    """Every process below `root`: this run's Redis, worker and model, not the machine's
    other work (the machine is shared, and other people's workers run models too)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parent[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found: set[int] = set()
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        kids = [c for c, p in parent.items() if p == pid and c not in found]
        found.update(kids)
        frontier.extend(kids)
    return found


def one_run(
    archive: Path,
    mode: dict[str, Any],
    workdir: Path,
    latency_ms: float,
    max_message: int,
    devices: int = 1,
) -> dict[str, float]:
    """Figures per image of one run of `archive` in `mode` on a fresh Redis and database."""
    server = EmbeddedRedis().start()
    settings = Settings(
        broker_url=server.url,
        database_url=f"sqlite:///{workdir / f'large-{time.time_ns()}.db'}",
        max_message_bytes=max_message,
        **mode,
    )
    engine = make_engine(settings.database_url)
    ensure_schema(engine, create=True)
    env = {"ALLSCREEN_EIM_LATENCY_MS": str(latency_ms)}
    workers = [
        start_worker(settings, f"nano-{i + 1}", 1, env=env, celery_args=("--pool", "solo"))
        for i in range(devices)
    ]
    client = redis.Redis.from_url(server.url)
    try:
        warm = workdir / f"warm-{time.time_ns()}"
        warm.mkdir()
        for i, p in enumerate(sorted(DATA.glob("Benign/*.jpg"))[: WARM_IMAGES * devices]):
            (warm / f"{i}.jpg").write_bytes(p.read_bytes() + b"warm")
        submit([warm], settings, run_name="warm-up", err=io.StringIO())
        watch("warm-up", settings, err=io.StringIO())
        stats0: Mapping[str, Any] = client.info("stats")
        cpu0 = cpu_seconds()
        t0 = time.time()
        done = submit([archive], settings, run_name="large", err=io.StringIO())
        _, counts, _ = watch("large", settings, err=io.StringIO())
        mine = descendants(os.getpid()) | {os.getpid()}
        cpu = cpu_by_role(cpu0, {k: v for k, v in cpu_seconds().items() if k in mine})
        stats1: Mapping[str, Any] = client.info("stats")
        with engine.connect() as conn:
            last = conn.scalar(
                select(func.max(Result.finished_at)).where(Result.run_id == done.run_id)
            )
            prep = [
                float(x)
                for x in conn.scalars(select(Result.decode_ms).where(Result.run_id == done.run_id))
                if x is not None
            ]
        if last is None or counts.failed:
            raise SystemExit(f"{counts.failed} of {counts.total} images failed in {mode}")
        n = done.registered.new
        out = {f"cpu_{role}": 1000 * s / n for role, s in cpu.items()}
        out["rate"] = n / (last.replace(tzinfo=UTC).timestamp() - t0)
        for key in ("total_net_input_bytes", "total_net_output_bytes"):
            out[key] = (int(stats1[key]) - int(stats0[key])) / n
        out["prepare_ms"] = median(prep) if prep else float("nan")
        return out
    finally:
        client.close()
        for worker in workers:
            stop_group(worker)
        server.stop()
        engine.dispose()


def main() -> None:
    """Print one table per kind of large image: a row per mode, medians over repeats."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=96, help="images of `test` per archive")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--latency-ms", type=float, default=13.0)
    ap.add_argument("--devices", type=int, default=1, help="emulated devices (worker processes)")
    ap.add_argument(
        "--max-message-bytes",
        type=int,
        default=Settings().max_message_bytes,
        help="ALLSCREEN_MAX_MESSAGE_BYTES: a file larger than this is refused (5 MP TIFFs are)",
    )
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    args = ap.parse_args()
    ideal = args.devices * 1000 / args.latency_ms
    print(
        f"# large images through the pipeline: {args.devices} emulated device(s) "
        f"({args.latency_ms:g} ms per inference, ideal {ideal:.1f} img/s), {args.images} "
        f"images per device; {machine()}"
    )
    sources = split_images("test", args.images * args.devices)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.kinds:
            archive = write_large_set(Path(tmp), KINDS[name], sources)
            runs: dict[str, list[dict[str, float]]] = {m: [] for m in args.modes}
            for _ in range(args.repeats):
                for mode in args.modes:
                    runs[mode].append(
                        one_run(
                            archive,
                            MODES[mode],
                            Path(tmp),
                            args.latency_ms,
                            args.max_message_bytes,
                            args.devices,
                        )
                    )
            print(f"\n## {name}, {len(sources)} images\n")
            print(
                "| mode | img/s (runs) | / ideal | / bytes/full (same repeat) | Redis in KB/img | "
                "Redis out KB/img | CPU ms/img worker | model | producer | Redis | "
                "prepare ms p50 |"
            )
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            for mode, rs in runs.items():
                rates = [r["rate"] for r in rs]
                rel = (
                    [r["rate"] / b["rate"] for r, b in zip(rs, runs[BASELINE], strict=True)]
                    if BASELINE in runs
                    else [float("nan")]
                )

                def med(key: str, rs: list[dict[str, float]] = rs) -> float:
                    return median([r.get(key, 0.0) for r in rs])

                print(
                    f"| {mode} | {median(rates):.1f} ({' '.join(f'{x:.1f}' for x in rates)}) | "
                    f"{median(rates) / ideal:.2f} | {median(rel):.2f} | "
                    f"{med('total_net_input_bytes') / 1e3:.1f} | "
                    f"{med('total_net_output_bytes') / 1e3:.1f} | {med('cpu_worker'):.1f} | "
                    f"{med('cpu_model'):.1f} | {med('cpu_producer'):.1f} | "
                    f"{med('cpu_redis'):.2f} | {med('prepare_ms'):.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
