"""One pass of `submit` over one broker connection: register while sending, then send.

`submit` (`producer.submit`) makes a pass per broker connection; a lost broker ends the pass
and is waited for (`producer.outage`). Registration happens in the first pass only, and
goes on even if the broker goes away during it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TextIO

from sqlalchemy import Engine

from allscreen.settings import Settings
from producer.archive import LabelMode, scan
from producer.cases import CaseNamer
from producer.claims import database_now
from producer.enqueue import Enqueuer, Publisher
from producer.live import LiveProducers
from producer.outage import BROKER_ERRORS, first_line
from producer.recent import RecentBytes
from producer.register import RegisterStats, register
from producer.shard import Shard
from producer.stored_paths import PathStore


def open_enqueuer(
    engine: Engine,
    pub: Publisher,
    live: LiveProducers,
    run_id: int,
    settings: Settings,
    pin: str | None,
    recent: RecentBytes | None,
    stored: PathStore,
    err: TextIO,
) -> Enqueuer:
    """A sender of the run's pending images for one broker connection.

    An idle broker with no other producer on the run holds none of this run's batches (it
    may have lost them in a restart), so every pending image goes out again; otherwise only
    images never sent. The clock is read before the broker is looked at (`producer.live`
    says why). Files are read once: the bytes hashed at registration go out as they are.
    """
    since = database_now(engine)
    others = live.others()
    if others:
        err.write(f"{others} other producer(s) are feeding this run; sharing the work\n")
    return Enqueuer(
        engine,
        pub,
        run_id,
        settings,
        pin=pin,
        only_new=others > 0 or not pub.broker_idle(),
        recent=recent,
        locate=stored.locate,
        resend_before=since,
        live=live,
    )


def register_while_sending(
    engine: Engine,
    run_id: int,
    paths: list[Path],
    enqueuer: Enqueuer,
    labels: LabelMode,
    recent: RecentBytes | None,
    *,
    cases: CaseNamer | None,
    stored: PathStore,
    shard: Shard | None,
    err: TextIO,
) -> tuple[RegisterStats, BaseException | None]:
    """Register every image under `paths`, sending batches while the scan goes on.

    Sending during the scan is opportunistic: if the broker goes away, registration goes on
    and the images are sent once it is back. Returns the registration and the broker's error
    if it went away (`submit` then waits for it, without registering again).
    """
    found = scan([os.fsencode(p) for p in paths], labels)
    if shard is not None:
        found = shard.select(found, lambda item: stored.stored(item)[0])
        err.write(f"shard {shard}: registering only this shard's files\n")
    lost: list[BaseException] = []

    def scanned(stats: RegisterStats) -> None:
        # Devices start on the first batches while the rest of the archive is scanned;
        # the scan never waits for them (a full window just defers the sending).
        if not lost:
            try:
                enqueuer.pump(block=False)
            except BROKER_ERRORS as exc:
                lost.append(exc)
                err.write(f"\nlost the broker ({first_line(exc)}); registering goes on\n")
        if err.isatty():
            err.write(f"\r\033[Kscanned {stats.files} files, enqueued {enqueuer.stats.images}")
            err.flush()

    t0 = time.monotonic()
    reg = register(
        engine, run_id, found, on_progress=scanned, keep=recent, cases=cases, paths=stored
    )
    seconds = time.monotonic() - t0
    if err.isatty():
        err.write("\n")
    err.write(
        f"registered {reg.new} new images from {reg.files} files in {seconds:.1f} s "
        f"({reg.files / max(seconds, 1e-9):.0f} files/s)"
        + (f"; {reg.unreadable} unreadable, recorded as failed" if reg.unreadable else "")
        + "\n"
    )
    if cases is not None and cases.unmapped:
        err.write(
            f"warning: {cases.unmapped} images are not in the case manifest; "
            "they are screened and reported per image, in no case\n"
        )
    return reg, lost[0] if lost else None
