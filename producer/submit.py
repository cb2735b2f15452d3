"""`submit` and `resume`: register an archive, then stream its pending images to the broker."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine

from allscreen import defaults
from allscreen.db import open_engine
from allscreen.errors import ConfigError
from allscreen.policy import ScreeningPolicy
from allscreen.policy_store import set_policy
from allscreen.runs import Counts, find_run
from allscreen.schema import Run
from allscreen.settings import Settings
from producer.archive import LabelMode
from producer.cases import CaseNamer
from producer.claims import database_now
from producer.enqueue import Enqueuer, EnqueueStats, Publisher
from producer.live import LiveProducers
from producer.outage import BROKER_ERRORS, BrokerOutage, first_line
from producer.progress import wait_for_run
from producer.recent import RecentBytes
from producer.register import RegisterStats, get_or_create_run
from producer.sending import open_enqueuer, register_while_sending
from producer.shard import Shard
from producer.stored_paths import Locator, PathStore, locator_for_run


@dataclass(frozen=True, slots=True)
class Submitted:
    """What a submission did."""

    run_id: int
    run_name: str
    registered: RegisterStats
    enqueued: EnqueueStats
    register_seconds: float = 0.0
    enqueue_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class SetPolicy:
    """A screening policy given at submission, and where it came from (for the record)."""

    policy: ScreeningPolicy
    source: str


def default_run_name() -> str:
    """A run name from the clock, for submissions that name none."""
    return datetime.now().strftime("run-%Y%m%d-%H%M%S")


def _celery_app(settings: Settings) -> object:
    from worker.app import make_app

    return make_app(settings)


def submit(
    paths: list[Path],
    settings: Settings,
    *,
    run_name: str | None = None,
    labels: LabelMode = "none",
    pin: str | None = None,
    cases: CaseNamer | None = None,
    policy: SetPolicy | None = None,
    stored: PathStore | None = None,
    shard: Shard | None = None,
    err: TextIO = sys.stderr,
) -> Submitted:
    """Register every image under `paths` in the run and enqueue those without a result.

    Enqueueing starts with the first registered chunk, so devices work while the scan goes on.
    `stored` says what the database keeps of each path (`producer.stored_paths`). With
    `shard`, only that shard's files are registered (`producer.shard`); several producers
    may feed one run at once, and none sends an image another has sent (`producer.claims`).
    """
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ConfigError(f"no such file or folder: {', '.join(missing)}")
    stored = stored or PathStore()
    engine = open_engine(settings, create=True)
    name = run_name or default_run_name()
    run_id, created = get_or_create_run(engine, name, pin=pin, paths=stored)
    err.write(f"{'created' if created else 'continuing'} run {name} (id {run_id}); scanning\n")
    if stored.mode != "absolute":
        what = "relative paths" if stored.mode == "relative" else "keyed hashes of paths"
        err.write(f"the database keeps {what} only (--store-paths {stored.mode})\n")
    if policy is not None:
        set_policy(engine, run_id, policy.policy, source=policy.source, labels=[])
        err.write(f"screening policy: {policy.policy.describe()}\n")

    recent = RecentBytes() if settings.transport == "bytes" else None
    outage = BrokerOutage(settings.broker_retry_seconds, err)
    reg: RegisterStats | None = None
    enq = EnqueueStats()
    t0 = t1 = time.monotonic()
    while True:  # one pass per broker connection: a lost broker is waited for (outage)
        enqueuer: Enqueuer | None = None
        try:
            with (
                Publisher(_celery_app(settings), settings) as pub,
                _live(pub, settings, run_id) as live,
            ):
                outage.recovered()
                enqueuer = open_enqueuer(
                    engine, pub, live, run_id, settings, pin, recent, stored, err
                )
                if reg is None:  # registered once, whatever happens to the broker meanwhile
                    reg, lost = register_while_sending(
                        engine, run_id, paths, enqueuer, labels, recent,
                        cases=cases, stored=stored, shard=shard, err=err,
                    )  # fmt: skip
                    t1 = time.monotonic()
                    if lost is not None:
                        raise lost
                enqueuer.pump(block=True)
            break
        except BROKER_ERRORS as exc:
            if not outage.connected:
                raise  # never reached: a wrong URL or a broker not started is one clear line
            outage.wait(exc)
        finally:  # what a pass sent counts, whether or not the broker stayed
            if enqueuer is not None:
                enq.add(enqueuer.stats)
    if recent is not None:
        recent.clear()
    t2 = time.monotonic()
    err.write(
        f"enqueued {enq.images} images in {enq.batches} batches in {t2 - t0:.1f} s"
        + (f"; {enq.failed} unreadable now, recorded as failed" if enq.failed else "")
        + (f"; rode out {outage.outages} broker outage(s)" if outage.outages else "")
        + "\n"
    )
    assert reg is not None  # the loop ends only after a pass that registered
    return Submitted(run_id, name, reg, enq, t1 - t0, t2 - t1)


@contextmanager
def _live(pub: Publisher, settings: Settings, run_id: int) -> Iterator[LiveProducers]:
    """This producer's entry among the run's live producers, for as long as it sends."""
    live = LiveProducers(pub.client, settings.queue, run_id)
    live.enter()
    try:
        yield live
    finally:
        live.leave()


def _resend(
    engine: Engine,
    pub: Publisher,
    run_id: int,
    settings: Settings,
    *,
    pin: str | None,
    locate: Locator | None,
    err: TextIO,
) -> EnqueueStats:
    """Send every image of the run without a result that was not claimed since now.

    While another producer is live on the run, the images it claimed are its own batches on
    their way, not lost ones: then only images never sent go out (`err` says so).
    """
    with _live(pub, settings, run_id) as live:
        since = database_now(engine)
        others = live.others()
        if others:
            err.write(
                f"{others} other producer(s) are sending to this run: re-sending only images "
                "never sent (run resume again once they have finished)\n"
            )
        enqueuer = Enqueuer(
            engine,
            pub,
            run_id,
            settings,
            pin=pin,
            only_new=others > 0,
            locate=locate,
            resend_before=since,
            live=live,
        )
        enqueuer.pump(block=True)
    return enqueuer.stats


def resume(
    ref: str,
    settings: Settings,
    *,
    root: Path | None = None,
    key_file: Path | None = None,
    err: TextIO = sys.stderr,
) -> EnqueueStats:
    """Re-enqueue every image of run `ref` that has no result (say, after Redis lost its queue).

    A run that stores relative or hashed paths needs its archive `root` (and `key_file`) to find
    its files again (`producer.stored_paths.locator_for_run`).
    """
    engine = open_engine(settings, create=False)
    run = find_run(engine, ref)
    locate = locator_for_run(engine, run, root=root, key_file=key_file, err=err)
    with Publisher(_celery_app(settings), settings) as pub:
        enq = _resend(engine, pub, run.id, settings, pin=run.model_sha256, locate=locate, err=err)
    err.write(f"re-enqueued {enq.images} images of run {run.name} in {enq.batches} batches\n")
    return enq


def watch(
    ref: str,
    settings: Settings,
    *,
    root: Path | None = None,
    key_file: Path | None = None,
    err: TextIO = sys.stderr,
) -> tuple[Run, Counts, float]:
    """Show progress until run `ref` is finished; re-enqueue work the broker lost on the way.

    If nothing has progressed for a while and the broker holds no batch at all while images
    still lack a result, those batches were lost (say, Redis restarted): they go out again,
    found through `root` and `key_file` as `resume` finds them.
    """
    engine = open_engine(settings, create=False)
    run = find_run(engine, ref)

    away: list[str] = []  # the broker's error while it is unreachable, said once

    def recover(stalled: float) -> None:
        if stalled < defaults.RECOVER_AFTER_SECONDS:
            return
        try:
            resend()
        except BROKER_ERRORS as exc:  # looked at again at the next poll
            if not away:
                away.append(first_line(exc))
                err.write(f"\nthe broker is unreachable ({away[0]}); waiting for it\n")
        else:
            away.clear()

    def resend() -> None:
        with Publisher(_celery_app(settings), settings) as pub:
            if not pub.broker_idle() or LiveProducers(pub.client, settings.queue, run.id).others():
                return  # batches are in the broker, or a producer is still sending
            locate = locator_for_run(engine, run, root=root, key_file=key_file, err=err)
            enq = _resend(
                engine, pub, run.id, settings, pin=run.model_sha256, locate=locate, err=err
            )
        if enq.images:
            err.write(
                f"\nthe broker held none of the {enq.images} pending images: re-enqueued them\n"
            )

    c, seconds = wait_for_run(engine, run.id, err, on_stall=recover)
    return run, c, seconds
