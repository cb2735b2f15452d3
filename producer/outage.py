"""Riding out a broker outage while a producer sends: wait for Redis, then send again.

A Redis restart (a deploy, a crash, a full disk) breaks every connection the producer holds.
Nothing it has done is lost: the images are registered in SQL, a batch whose send failed gives
its claim back (`producer.claims.release`), and the next attempt sends what the broker does not
hold (everything still pending, if the restart emptied it). So `submit` waits for the broker,
up to `ALLSCREEN_BROKER_RETRY_SECONDS` from the first failure, saying so once per attempt,
then goes on where it stopped; after that it stops with one clear message, and running it again
completes the run. A broker never reached (a wrong URL, Redis not started) is not waited for:
that is a configuration error, reported at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

import kombu.exceptions
import redis

from allscreen.errors import BrokerUnavailable

#: What a lost or refused broker connection raises while a producer sends.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    kombu.exceptions.OperationalError,
    BrokerUnavailable,
)

_FIRST_DELAY = 0.5  #: seconds before the first attempt to send again
_MAX_DELAY = 5.0  #: seconds between attempts at most, so the broker's return is noticed quickly


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (kombu and redis-py can be wordy)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class BrokerOutage:
    """The waits between attempts to send while the broker is away, within one deadline."""

    def __init__(
        self,
        seconds: float,
        err: TextIO,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Allow `seconds` from the first failure; report on `err`."""
        self._seconds = seconds
        self._err = err
        self._sleep = sleep
        self._clock = clock
        self._since: float | None = None
        self._delay = _FIRST_DELAY
        self.outages = 0  #: failures ridden out so far
        self.connected = False  #: whether the broker was ever reached (else nothing to wait for)

    def wait(self, exc: BaseException) -> None:
        """Wait before the next attempt after `exc`; raise BrokerUnavailable past the deadline."""
        now = self._clock()
        if self._since is None:
            self._since = now
        waited = now - self._since
        if waited + self._delay > self._seconds:
            raise BrokerUnavailable(
                f"the broker has been unreachable for {waited:.0f} s ({first_line(exc)}); "
                "the run is saved: submit it again to send the rest"
            ) from exc
        self._err.write(
            f"\nlost the broker ({first_line(exc)}); trying again in {self._delay:.1f} s "
            f"(for up to {self._seconds:.0f} s); nothing sent is lost\n"
        )
        self._sleep(self._delay)
        self._delay = min(self._delay * 2, _MAX_DELAY)

    def recovered(self) -> None:
        """An attempt reached the broker: the next outage gets the whole allowance again."""
        self.connected = True
        if self._since is not None:
            self.outages += 1
        self._since = None
        self._delay = _FIRST_DELAY
