"""Live progress of a run: done, failed, images/s and ETA, on a terminal (rich) or in a log."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn
from sqlalchemy import Engine, func, select

from allscreen.durations import format_duration
from allscreen.runs import Counts, counts
from allscreen.schema import Result

RATE_SEED_SECONDS = 30.0  #: the run's results of this trailing span seed the rate
RATE_TIME_CONSTANT = 10.0  #: seconds over which the shown rate follows a change (EWMA)
_LOG_EVERY = 5.0  #: seconds between lines when the output is not a terminal
_STALL_HINT_SECONDS = 60.0  #: silence after which the line hints that no worker is taking jobs
_STALL_HINT = "no progress: is a worker running? `allscreen worker`"


def recent_rate(engine: Engine, run_id: int, window: float = RATE_SEED_SECONDS) -> float:
    """Results per second over the run's last `window` seconds of results (its own clock).

    Taken from the results' own timestamps, so a line that starts when most of a run is done
    shows its real rate at once instead of 0 img/s.
    """
    with engine.connect() as conn:
        newest = conn.scalar(select(func.max(Result.finished_at)).where(Result.run_id == run_id))
        if newest is None:
            return 0.0
        n, oldest = conn.execute(
            select(func.count(), func.min(Result.finished_at)).where(
                Result.run_id == run_id, Result.finished_at >= newest - timedelta(seconds=window)
            )
        ).one()
    if n < 2:
        return float(n) / window
    # The rows lie within `window` of the newest, so their own span is the divisor.
    return float(n) / max((newest - oldest).total_seconds(), 1.0)


class ProgressLine:
    """Progress of a run: a rich bar on a terminal, a plain line every few seconds elsewhere.

    The rate is an exponentially weighted average of the observed results per second,
    seeded from the run's own recent results (`recent_rate`), so it is right from the start
    and steady while it runs; the ETA is the pending images over that rate.
    """

    def __init__(
        self,
        stream: TextIO,
        total: int,
        *,
        initial_rate: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._rate = initial_rate
        self._start = clock()
        self._last: tuple[float, int] | None = None
        self._last_print = -1e9
        self._last_change = self._start
        self._last_n = -1
        self._bar: Progress | None = None
        if stream.isatty():
            self._bar = Progress(
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[detail]}"),
                console=Console(file=stream),
                auto_refresh=False,
            )
            self._task = self._bar.add_task("run", total=total, detail="")
            self._bar.start()

    def rate(self) -> float:
        """Images per second, smoothed."""
        return self._rate

    def _observe(self, now: float, n: int) -> None:
        if self._last is not None:
            t0, n0 = self._last
            dt = now - t0
            if dt > 0:
                weight = 1.0 - math.exp(-dt / RATE_TIME_CONSTANT)
                self._rate += weight * ((n - n0) / dt - self._rate)
        self._last = (now, n)

    def detail(self, c: Counts) -> str:
        """Done, failed, rate and ETA (and a hint when nothing moves)."""
        rate = self.rate()
        if c.pending == 0:
            eta = "0:00"
        else:
            eta = format_duration(c.pending / rate) if rate > 0 else "--:--"
        text = f"done {c.done}  failed {c.failed}  {rate:.0f} img/s  ETA {eta}"
        if self._clock() - self._last_change > _STALL_HINT_SECONDS and c.pending:
            text += f"  ({_STALL_HINT})"
        return text

    def render(self, c: Counts) -> str:
        """The progress as one plain line (logs and pipes)."""
        n = c.done + c.failed
        frac = n / c.total if c.total else 1.0
        return f"{n}/{c.total} ({frac:.0%})  {self.detail(c)}"

    def update(self, c: Counts, *, force: bool = False) -> None:
        """Record counts `c` and redraw when due."""
        now = self._clock()
        n = c.done + c.failed
        if n != self._last_n:
            self._last_change, self._last_n = now, n
        self._observe(now, n)
        if self._bar is not None:
            self._bar.update(self._task, total=c.total, completed=n, detail=self.detail(c))
            self._bar.refresh()
        elif force or now - self._last_print >= _LOG_EVERY:
            self._stream.write(self.render(c) + "\n")
            self._stream.flush()
            self._last_print = now

    def close(self) -> None:
        """End the bar (a terminal keeps its last state)."""
        if self._bar is not None:
            self._bar.stop()

    @property
    def stalled(self) -> float:
        """Seconds since the count of finished images last changed."""
        return self._clock() - self._last_change

    @property
    def elapsed(self) -> float:
        """Seconds since the line was created."""
        return self._clock() - self._start


_COUNT_SHARE = 20  #: wait at least this many times as long as the last count took


def wait_for_run(
    engine: Engine,
    run_id: int,
    stream: TextIO,
    *,
    poll: float = 0.5,
    on_stall: Callable[[float], None] = lambda _: None,
) -> tuple[Counts, float]:
    """Show progress until every image of the run has a result; return counts and seconds.

    Counting reads every row of the run, so on a large run the poll backs off to keep the
    counting under 1/`_COUNT_SHARE` of the database's time.
    """
    t0 = time.monotonic()
    c = counts(engine, run_id)
    took = time.monotonic() - t0
    line = ProgressLine(stream, c.total, initial_rate=recent_rate(engine, run_id))
    try:
        while not c.finished:
            line.update(c)
            on_stall(line.stalled)
            time.sleep(max(poll, took * _COUNT_SHARE))
            t0 = time.monotonic()
            c = counts(engine, run_id)
            took = time.monotonic() - t0
        line.update(c, force=True)
    finally:
        line.close()
    return c, line.elapsed
