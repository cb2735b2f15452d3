"""(8) Reliability: a chaos soak. Screen a large archive with three workers while it all fails.

The archive is the shared set replicated with distinct bytes (a trailer after each JPEG's end,
made at run time in a temp folder), plus two planted images on which the faulty model hangs
(solid magenta) and dies (solid green). Three `allscreen worker` processes screen it from a
throwaway Redis into a fresh PostgreSQL database reached through a cuttable proxy, while a
seeded schedule (`bench.chaos`) kills pool processes and whole workers, restarts Redis empty
once and cuts the database for 20 s once. The producer is `submit` then `watch`, as
`allscreen submit --wait` runs them; when the broker restart breaks one of them it is run
again, as a person would, and the report counts those re-runs.

Afterwards every image must have exactly one result row, and the only failures must be the
two planted images, each with its reason. The report gives the wall time, the faults as they
fired, and for each killed worker the time from the kill to the last image of the batches it
held being done elsewhere.

Run (the long one; `--compare` first runs the same archive with no fault):
    nice .venv/bin/python -m bench.chaos_soak --images 20000 --compare [--seed 8]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import redis
from kombu.exceptions import OperationalError
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from allscreen.db import ensure_schema, make_engine
from allscreen.defaults import REPO_ROOT
from allscreen.demo import make_synthetic_images
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.errors import AllscreenError, BrokerUnavailable
from allscreen.schema import Image, Result
from allscreen.settings import Settings
from bench.chaos import Chaos, Fired, Fleet, schedule
from bench.common import DATA, machine
from bench.result_writes import postgres_database
from producer.submit import submit, watch
from tests.support.proxy import CuttableProxy

PG_URL = os.environ.get("ALLSCREEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
FAULTY = REPO_ROOT / "tests" / "support" / "faulty.eim"
PLANTED = {"hang": (255, 0, 255), "crash": (0, 255, 0)}  #: BGR colours the faulty model traps
REASONS = {"hang": "model hung", "crash": "model process died"}  #: words each failure carries
DEVICES = ["soak-1", "soak-2", "soak-3"]
PRODUCER_ATTEMPTS = 5  #: runs of submit (and of watch) before the soak gives up


class SoakFailed(AllscreenError):
    """Raised when a soak ends with an image lost, counted twice, or failed unplanned."""


@dataclass(slots=True)
class Outcome:
    """What one soak run did and how long it took."""

    images: int
    seconds: float
    faults: list[Fired] = field(default_factory=list)
    producer_reruns: int = 0
    failed: dict[str, str] = field(default_factory=dict)  #: path → error
    #: per killed worker: device, images it held, seconds to the last done, outages between
    handback: list[tuple[str, int, float, str]] = field(default_factory=list)
    alone: int = 0  #: images classified one at a time, their batch over-delivered


def make_archive(dest: Path, n: int) -> Path:
    """`n` distinct images from the shared set (synthetic where it is absent), plus the two
    planted ones in the middle of the scan."""
    sources = sorted(DATA.rglob("*.jpg")) if DATA.is_dir() else []
    if not sources:
        sources = sorted(make_synthetic_images(dest / "synthetic", 64).glob("*.jpg"))
    root = dest / "archive"
    for i in range(n):
        src = sources[i % len(sources)]
        copy = i // len(sources)
        out = root / f"copy{copy:03d}" / src.parent.name / src.name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(
            src.read_bytes() + f"chaos copy {copy} {src.parent.name}/{src.name}".encode()
        )
    middle = root / f"copy{(n // len(sources)) // 2:03d}"
    for name, colour in PLANTED.items():
        img = np.zeros((224, 224, 3), dtype=np.uint8)
        img[...] = colour
        cv2.imwrite(str(middle / f"planted-{name}.png"), img)
    return root


def _produce(archive: Path, settings: Settings, run: str) -> int:
    """`submit` then `watch`, each run again when a broker restart breaks it; count re-runs."""
    reruns = 0
    for step in ("submit", "watch"):
        for attempt in range(PRODUCER_ATTEMPTS):
            try:
                if step == "submit":
                    submit([archive], settings, run_name=run, err=io.StringIO())
                else:
                    watch(run, settings, err=io.StringIO())
                break
            except (BrokerUnavailable, redis.RedisError, OperationalError, OSError) as exc:
                if attempt == PRODUCER_ATTEMPTS - 1:
                    raise SoakFailed(f"{step} failed {PRODUCER_ATTEMPTS} times: {exc}") from exc
                logging.warning("%s broken by the broker (%s): running it again", step, exc)
                reruns += 1
                time.sleep(2.0)
    return reruns


def _check(engine: Engine, n: int, faults: bool) -> dict[str, str]:
    """Exactly one row per image, none missing; the failures only the planted ones."""
    with engine.connect() as conn:
        images = int(conn.scalar(select(func.count()).select_from(Image)) or 0)
        rows = int(conn.scalar(select(func.count()).select_from(Result)) or 0)
        distinct = int(conn.scalar(select(func.count(func.distinct(Result.image_id)))) or 0)
        failed = {
            str(p): str(e)
            for p, e in conn.execute(
                select(Image.path, Result.error)
                .join(Result, Result.image_id == Image.id)
                .where(Result.status != "done")
            ).all()
        }
    if not images == rows == distinct == n + 2:
        raise SoakFailed(f"{n + 2} images expected: {images} registered, {rows} rows, {distinct}")
    planted = {p: e for p, e in failed.items() if Path(p).stem.startswith("planted-")}
    if len(planted) != len(failed):
        unplanned = sorted((p, e) for p, e in failed.items() if p not in planted)
        reasons = sorted({e for _, e in unplanned})
        raise SoakFailed(f"{len(unplanned)} unplanned failures, e.g. {unplanned[:3]}; {reasons}")
    if faults:
        for name, reason in REASONS.items():
            errors = [e for p, e in planted.items() if Path(p).stem == f"planted-{name}"]
            if len(errors) != 1 or reason not in errors[0]:
                raise SoakFailed(f"planted-{name}: expected '{reason}', got {errors}")
    elif failed:
        raise SoakFailed(f"failures without faults: {failed}")
    return failed


def _handback(engine: Engine, fired: list[Fired]) -> list[tuple[str, int, float, str]]:
    """For each killed worker: seconds from the kill to the last of its held images done, and
    which outage (broker restart, database cut) fell in between and lengthened it."""
    out = []
    for f in fired:
        if f.kind != "worker" or not f.held_images:
            continue
        with engine.connect() as conn:
            last = conn.scalar(
                select(func.max(Result.finished_at)).where(Result.image_id.in_(f.held_images))
            )
        if last is not None:
            seconds = last.timestamp() - f.wall
            during = ", ".join(
                o.kind
                for o in fired
                if o.kind in ("redis", "database") and f.wall <= o.wall <= f.wall + seconds
            )
            out.append((f.target, len(f.held_images), seconds, during))
    return out


def soak(
    n: int,
    work: Path,
    *,
    seed: int = 8,
    faults: bool = True,
    children: int | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    delay_ms: float = 0.0,
) -> Outcome:
    """Screen `n` images (and the two planted ones) with three workers, with or without the
    seeded faults; raise SoakFailed unless every image has exactly one row as planned."""
    archive = make_archive(work, n)
    broker = EmbeddedRedis().start()
    with postgres_database(PG_URL, prefix="allscreen_soak") as direct:
        db_url = make_url(direct)
        proxy = CuttableProxy(db_url.host or "127.0.0.1", db_url.port or 5432).start()
        settings = Settings(
            broker_url=broker.url,
            database_url=direct,
            model=FAULTY,
            model_timeout=5.0,
            model_attempts=2,
        )
        if batch_size:
            settings = settings.model_copy(update={"batch_size": batch_size})
        via_proxy = db_url.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        engine = make_engine(direct)
        ensure_schema(engine, create=True)
        env = {
            "ALLSCREEN_EIM_FAULT": "chaos" if faults else "",
            "ALLSCREEN_EIM_PYTHON": sys.executable,
            "ALLSCREEN_EIM_DELAY_MS": str(delay_ms),
        }
        logs = work / "logs"
        logs.mkdir(exist_ok=True)
        fleet = Fleet(settings.model_copy(update={"database_url": via_proxy}), DEVICES, logs, env)
        plan = schedule(
            seed,
            children=children if children is not None else max(2, n // 4000),
            workers=workers if workers is not None else max(1, n // 10000),
        )

        def progress() -> float:
            with engine.connect() as conn:
                done = int(conn.scalar(select(func.count()).select_from(Result)) or 0)
            return done / (n + 2)

        chaos = Chaos(plan, seed=seed, progress=progress, fleet=fleet, broker=broker, proxy=proxy)
        try:
            fleet.wait_ready()
            t0 = time.monotonic()
            if faults:
                chaos.start()
            reruns = _produce(archive, settings, "soak")
            seconds = time.monotonic() - t0
            if faults:
                chaos.stop()
                if chaos.error is not None:
                    raise SoakFailed(f"a fault could not be injected: {chaos.error}")
                if len(chaos.fired) != len(plan):
                    raise SoakFailed(f"only {len(chaos.fired)} of {len(plan)} faults fired")
            failed = _check(engine, n, faults)
            with engine.connect() as conn:
                alone = conn.scalar(select(func.count()).where(Image.attempts_alone > 0)) or 0
            handback = _handback(engine, chaos.fired)
            return Outcome(n + 2, seconds, chaos.fired, reruns, failed, handback, int(alone))
        finally:
            try:
                if chaos.is_alive():
                    chaos.stop()
            finally:
                fleet.stop()
                proxy.stop()
                chaos.broker.stop()
                engine.dispose()


def describe(o: Outcome) -> str:
    """The outcome as a few lines of text."""
    lines = [f"{o.images} images in {o.seconds:.1f} s ({o.images / o.seconds:.0f} img/s)"]
    for f in o.faults:
        lines.append(
            f"  {f.seconds:6.1f} s  {f.kind:8s} at {100 * f.progress:3.0f}% {f.target}"
            + (f" (held {len(f.held_images)} images)" if f.kind == "worker" else "")
        )
    for device, images, s, during in o.handback:
        if s <= 0:  # its rows were committed just before the kill, the ack not yet sent
            lines.append(f"  {device} killed holding {images} images, already done: no hand-back")
            continue
        lines.append(
            f"  {device} killed holding {images} images: last done {s:.1f} s later"
            + (f" (a {during} outage fell in between)" if during else "")
        )
    if o.producer_reruns:
        lines.append(f"  producer steps run again after the broker restart: {o.producer_reruns}")
    if o.alone:
        lines.append(f"  images classified alone (their batch over-delivered): {o.alone}")
    lines += [f"  failed as planted: {p}: {e}" for p, e in sorted(o.failed.items())]
    return "\n".join(lines)


def main() -> None:
    """Run the soak (and, with --compare, the same run without faults first)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--compare", action="store_true", help="run without faults first")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    print(machine())
    runs = [False, True] if args.compare else [True]
    outcomes = {}
    for faults in runs:
        work = Path(tempfile.mkdtemp(prefix="allscreen-soak-"))
        try:
            o = soak(args.images, work, seed=args.seed, faults=faults)
        except SoakFailed:
            shutil.rmtree(work / "archive", ignore_errors=True)
            print(f"the workers' logs are kept in {work / 'logs'}", file=sys.stderr)
            raise
        shutil.rmtree(work)
        outcomes[faults] = o
        print(("chaos: " if faults else "no faults: ") + describe(o), flush=True)
    if args.compare:
        ratio = outcomes[True].seconds / outcomes[False].seconds
        print(f"wall time with faults / without: {ratio:.2f}")


if __name__ == "__main__":
    main()
