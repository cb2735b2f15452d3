"""Which producers are feeding a run right now: a small sorted set in the broker.

`submit` re-sends every pending image of a run when the broker holds none of its batches
(they were lost, say in a Redis restart). With a second producer on the same run that rule
is wrong: the other producer's images are pending and claimed, just not yet sent or not yet
finished. So each producer enters itself in `allscreen:producer:<queue>:<run>` (member: a
random token, score: when its entry expires, on Redis' clock), renews the entry while it
works, and removes it when it stops; one that dies drops out after `LIVE_TTL_SECONDS`. A
producer re-sends only if the broker is idle *and* no other producer is live.

The order makes it safe: a producer enters itself, then reads the claim clock
(`producer.claims.database_now`), then looks at the broker and the others. Of two producers,
the later one to enter sees the earlier one; the earlier one, if it did not see the later
one, took its clock before the later one claimed anything, so it cannot re-claim those.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import redis

LIVE_PREFIX = "allscreen:producer"  #: Redis key prefix of the live-producer sets
#: Seconds an entry lives without renewal: long enough for a slow chunk of hashing between
#: two renewals, short enough that a killed producer stops counting within a minute.
LIVE_TTL_SECONDS = 60
RENEW_SECONDS = 10.0  #: the least time between two renewals of a producer's entry


def live_key(queue: str, run_id: int) -> str:
    """The Redis key of run `run_id`'s live producers on `queue`."""
    return f"{LIVE_PREFIX}:{queue}:{run_id}"


class LiveProducers:
    """This producer's entry among a run's live producers, on a redis-py client."""

    def __init__(self, client: Any, queue: str, run_id: int) -> None:
        self._client = client
        self._key = live_key(queue, run_id)
        self._token = uuid.uuid4().hex
        self._renewed = float("-inf")

    def _now(self) -> float:
        seconds, micros = self._client.time()
        return float(seconds) + float(micros) / 1e6

    def enter(self) -> None:
        """Add (or renew) this producer's entry, and forget entries that have expired."""
        now = self._now()
        pipe = self._client.pipeline()
        pipe.zremrangebyscore(self._key, "-inf", now)
        pipe.zadd(self._key, {self._token: now + LIVE_TTL_SECONDS})
        pipe.expire(self._key, 2 * LIVE_TTL_SECONDS)
        pipe.execute()
        self._renewed = time.monotonic()

    def renew(self) -> None:
        """`enter` again, at most every `RENEW_SECONDS` (called often, from the send loop)."""
        if time.monotonic() - self._renewed >= RENEW_SECONDS:
            self.enter()

    def others(self) -> int:
        """How many other producers are live on this run."""
        now = self._now()
        live = self._client.zrangebyscore(self._key, f"({now}", "+inf")
        return sum(1 for member in live if member != self._token.encode())

    def leave(self) -> None:
        """Remove this producer's entry; where the broker is gone, it expires by itself."""
        # Leaving is a courtesy: the entry's score already says when it lapses.
        with contextlib.suppress(redis.RedisError):
            self._client.zrem(self._key, self._token)
