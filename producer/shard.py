"""`submit --shard K/N`: one of N producers that split the scanning of one archive.

Registration (reading and hashing every file) is the producer's own cost. N producers given
the same PATHS and run each take the files whose stored path falls in their shard, so each
reads and hashes a 1/N share. The shard is a stable hash of the stored path (the relative
path, or its keyed hash with `--store-paths hashed`), the same on every machine and in every
release. Sending needs no shard: every producer sends any pending image of the run, and a
claim in SQL (`producer.claims`) gives each image to one of them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from allscreen.errors import ConfigError
from producer.archive import Found

_SHARD = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def owns(self, path: str) -> bool:
        """True when the image stored under `path` belongs to this shard."""
        digest = hashlib.blake2b(path.encode("utf-8", "surrogateescape"), digest_size=8)
        return int.from_bytes(digest.digest(), "big") % self.count == self.index - 1

    def select(self, found: Iterable[Found], stored: Callable[[Found], str]) -> Iterator[Found]:
        """The found images of this shard; `stored` gives the path stored for each."""
        return (item for item in found if self.owns(stored(item)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """`K/N` as a Shard; anything else (or K outside 1..N) is refused in one line."""
    m = _SHARD.match(text.strip())
    if m is None:
        raise ConfigError(f"--shard takes K/N (say 1/2), not {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if not 1 <= index <= count:
        raise ConfigError(f"--shard {text}: K must be between 1 and N")
    return Shard(index, count)
