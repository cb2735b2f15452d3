"""A live progress line: done, failed, images/s and ETA, for a terminal or a log."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

from sqlalchemy import Engine

from allscreen.durations import format_duration
from allscreen.runs import Counts, counts

_WINDOW_SECONDS = 10.0  #: rate is measured over this trailing window
_LOG_EVERY = 5.0  #: seconds between lines when the output is not a terminal
_STALL_HINT_SECONDS = 60.0  #: silence after which the bar hints that no worker is taking jobs
_BAR = 24


class ProgressLine:
    """Renders progress; redraws in place on a terminal, prints lines elsewhere."""

    def __init__(
        self, stream: TextIO, total: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self._total = total
        self._clock = clock
        self._tty = stream.isatty()
        self._samples: deque[tuple[float, int]] = deque()
        self._start = clock()
        self._last_print = -1e9
        self._last_change = self._start
        self._last_n = -1

    def rate(self) -> float:
        """Images per second over the trailing window."""
        if len(self._samples) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def render(self, c: Counts) -> str:
        """The progress text for counts `c`."""
        n = c.done + c.failed
        frac = n / c.total if c.total else 1.0
        filled = int(frac * _BAR)
        rate = self.rate()
        eta = format_duration(c.pending / rate) if rate > 0 and c.pending else "--:--"
        if c.pending == 0:
            eta = "0:00"
        text = (
            f"[{'#' * filled}{'.' * (_BAR - filled)}] {n}/{c.total} ({frac:.0%})  "
            f"done {c.done}  failed {c.failed}  {rate:.0f} img/s  ETA {eta}"
        )
        if self._clock() - self._last_change > _STALL_HINT_SECONDS and c.pending:
            text += "  (no progress: is a worker running? `allscreen worker`)"
        return text

    def update(self, c: Counts, *, force: bool = False) -> None:
        """Record counts `c` and redraw when due."""
        now = self._clock()
        n = c.done + c.failed
        if n != self._last_n:
            self._last_change, self._last_n = now, n
        self._samples.append((now, n))
        while len(self._samples) > 2 and now - self._samples[0][0] > _WINDOW_SECONDS:
            self._samples.popleft()
        if self._tty:
            self._stream.write("\r\033[K" + self.render(c))
        elif force or now - self._last_print >= _LOG_EVERY:
            self._stream.write(self.render(c) + "\n")
            self._last_print = now
        self._stream.flush()

    def close(self) -> None:
        """End the in-place line."""
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()

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
    line = ProgressLine(stream, c.total)
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
