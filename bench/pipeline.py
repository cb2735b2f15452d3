"""(2) The pipeline against the raw limit, measured alternately in the same run.

`submit` of the shared archive with K worker processes (warmed up), timed from the start of
`submit` to the last result committed, on SQLite and an embedded Redis. Each run also prints
the CPU spent per image by each role of the pipeline and of the raw loop beside it: the rate
ratio says how the two compare on the machine as it was; the CPU ratio (raw loop's CPU per
image over the pipeline's) is the rate ratio both would reach if each kept every core busy,
and moves far less with other work on the machine. Run:
    .venv/bin/python -m bench.pipeline [--procs K] [--repeats R] [--batch-size B]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Literal

from sqlalchemy import func, select

from allscreen.db import ensure_schema, make_engine
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.process import stop_group as stop
from allscreen.schema import Result
from allscreen.settings import Settings
from bench.common import (
    DATA,
    cpu_by_role,
    cpu_seconds,
    images,
    machine,
    median,
    replicate,
    start_worker,
)
from bench.raw_limit import raw_run
from producer.submit import submit, watch


def pipeline_rate(
    procs: int,
    batch_size: int,
    workdir: Path,
    pool: str = "prefork",
    transport: Literal["bytes", "path"] = "bytes",
    archive: Path = DATA,
    on_submit: Callable[[list[int]], object] = lambda pids: None,
    env: dict[str, str] | None = None,
) -> tuple[float, int, dict[str, float]]:
    """(images/s, images, CPU ms per image by role) for one timed run on a fresh database
    and broker.

    With the prefork pool, one worker runs `procs` children; with `solo`, `procs` workers run
    one process each. `on_submit` gets the worker pids as the timed submit starts. The roles
    are `cpu_by_role`'s, plus `worker-main`: the part of `worker` spent in the workers' main
    processes (with prefork, the parent that receives messages and hands them to children).
    `env` is added to the workers' environment (a variant's settings).
    """
    redis = EmbeddedRedis().start()
    db = workdir / f"bench-{time.time_ns()}.db"
    settings = Settings(
        broker_url=redis.url,
        database_url=f"sqlite:///{db}",
        batch_size=batch_size,
        transport=transport,
    )
    engine = make_engine(settings.database_url)
    ensure_schema(engine, create=True)
    if pool == "prefork":
        workers = [start_worker(settings, "bench", procs, env=env)]
    else:
        workers = [
            start_worker(settings, f"bench-{i}", 1, env=env, celery_args=("--pool", pool))
            for i in range(procs)
        ]
    try:
        warm = sorted(DATA.glob("Benign/*.jpg"))[: procs * batch_size]
        warm_dir = workdir / f"warm-{time.time_ns()}"
        warm_dir.mkdir()
        for p in warm:
            (warm_dir / p.name).write_bytes(p.read_bytes() + b"warm-up")
        submit([warm_dir], settings, run_name="warm-up", err=io.StringIO())
        watch("warm-up", settings, err=io.StringIO())
        cpu0 = cpu_seconds()
        t0 = time.time()
        on_submit([w.pid for w in workers])
        done = submit([archive], settings, run_name="bench", err=io.StringIO())
        watch("bench", settings, err=io.StringIO())
        cpu1 = cpu_seconds()
        spent = cpu_by_role(cpu0, cpu1)
        spent["worker-main"] = sum(
            cpu1[w.pid][1] - cpu0[w.pid][1] for w in workers if w.pid in cpu0 and w.pid in cpu1
        )
        with engine.connect() as conn:
            last = conn.scalar(
                select(func.max(Result.finished_at)).where(Result.run_id == done.run_id)
            )
        assert last is not None
        seconds = last.replace(tzinfo=UTC).timestamp() - t0
        n = done.registered.new
        return n / seconds, n, {role: cpu * 1000 / n for role, cpu in spent.items()}
    finally:
        for worker in workers:
            stop(worker)
        redis.stop()


ROLES = ("worker", "model", "producer", "redis")


def _variant(text: str) -> dict[str, str]:
    """`KEY=VALUE[,KEY=VALUE...]` as a worker environment."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(p) != 2 or not p[0] for p in pairs):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE[,KEY=VALUE...], got {text!r}")
    return {k: v for k, v in pairs}


def main() -> None:
    """Alternate raw and pipeline runs; print rates, CPU per image by role, and the ratios."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=mp.cpu_count())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=Settings().batch_size)
    ap.add_argument("--pool", default="prefork", help="prefork: one worker; solo: one per proc")
    ap.add_argument("--transport", default=Settings().transport, choices=["bytes", "path"])
    ap.add_argument("--copies", type=int, default=1, help="copies of the image set (run length)")
    ap.add_argument(
        "--variant",
        type=_variant,
        default=None,
        metavar="KEY=VALUE[,...]",
        help="also run the pipeline with these worker settings in every repeat",
    )
    args = ap.parse_args()
    paths = images() * args.copies
    print(
        f"# pipeline vs raw: {args.procs} processes, batch {args.batch_size}, pool "
        f"{args.pool}, transport {args.transport}, {args.copies} copies; {machine()}"
    )
    setups: dict[str, dict[str, str] | None] = {"pipeline": None}
    if args.variant:
        setups["variant " + ",".join(f"{k}={v}" for k, v in args.variant.items())] = args.variant
    raws: list[float] = []
    runs: dict[str, dict[str, list[float]]] = {
        name: {k: [] for k in ("rate", "ratio", "cpu_ratio", *ROLES, "worker-main")}
        for name in setups
    }
    raw_cpu: dict[str, list[float]] = {"loop": [], "model": []}
    with tempfile.TemporaryDirectory() as tmp:
        archive = replicate(Path(tmp), args.copies)
        for i in range(args.repeats):
            raw = raw_run(paths, args.procs)
            raws.append(raw.rate)
            raw_cpu["loop"].append(raw.client_ms)
            raw_cpu["model"].append(raw.model_ms)
            print(
                f"run {i + 1}: raw {raw.rate:.0f} img/s; CPU ms/image: raw loop "
                f"{raw.client_ms:.3f}, model {raw.model_ms:.3f}; total {raw.cpu_ms:.3f}"
            )
            for name, env in setups.items():
                pipe, n, cpu = pipeline_rate(
                    args.procs, args.batch_size, Path(tmp), args.pool, args.transport,
                    archive, env=env,
                )  # fmt: skip
                total = sum(cpu.get(r, 0.0) for r in ROLES)
                got = runs[name]
                got["rate"].append(pipe)
                got["ratio"].append(pipe / raw.rate)
                got["cpu_ratio"].append(raw.cpu_ms / total)
                for role in (*ROLES, "worker-main"):
                    got[role].append(cpu.get(role, 0.0))
                print(
                    f"  {name}: {pipe:.0f} img/s ({n} images), ratio {pipe / raw.rate:.2f}; "
                    "CPU ms/image "
                    + ", ".join(f"{r} {cpu.get(r, 0.0):.3f}" for r in ROLES)
                    + f" (worker main processes {cpu.get('worker-main', 0.0):.3f}); total "
                    f"{total:.3f}; CPU ratio {raw.cpu_ms / total:.2f}"
                )
    print(
        f"median raw {median(raws):.0f} img/s; CPU ms/image: raw "
        + ", ".join(f"{r} {median(v):.3f}" for r, v in raw_cpu.items())
    )
    for name, got in runs.items():
        print(
            f"median {name}: {median(got['rate']):.0f} img/s, ratio {median(got['ratio']):.2f}, "
            f"CPU ratio {median(got['cpu_ratio']):.2f}; CPU ms/image "
            + ", ".join(f"{r} {median(got[r]):.3f}" for r in (*ROLES, "worker-main"))
        )


if __name__ == "__main__":
    main()
