"""Bytes of files just registered, kept for the enqueuer so each file is read and hashed once.

`submit` registers a chunk of the archive, then sends its pending images. Without this, the
enqueuer read every file a second time and hashed it again to check it had not changed since
registration (BENCHMARKS.md, section 2). Kept bytes are the registered content by construction
(they are what was hashed), so they need no second check. The store holds at most `budget`
bytes, each entry's overhead counted; once full it keeps nothing more until the enqueuer takes
some, and the enqueuer reads and verifies the files it did not keep as before, so memory stays
bounded however far the scan runs ahead of the broker's window.
"""

from __future__ import annotations

from allscreen import defaults

#: Memory an entry costs beyond its bytes (the sha256 string, the bytes object, the dict slot),
#: counted against the budget, so an archive of tiny files cannot hold unbounded entries.
ENTRY_OVERHEAD = 256


class RecentBytes:
    """sha256 → bytes of registered files, up to a memory budget; each taken at most once."""

    def __init__(self, budget: int = defaults.DEFAULT_RECENT_BYTES) -> None:
        self._data: dict[str, bytes] = {}
        self._size = 0
        self._budget = budget

    @property
    def size(self) -> int:
        """Memory held now, as counted against the budget."""
        return self._size

    def keep(self, sha256: str, data: bytes) -> None:
        """Hold `data` for the enqueuer, unless that would exceed the budget."""
        cost = len(data) + ENTRY_OVERHEAD
        if sha256 in self._data or self._size + cost > self._budget:
            return
        self._data[sha256] = data
        self._size += cost

    def take(self, sha256: str) -> bytes | None:
        """The kept bytes of `sha256`, removed from the store; None if not kept."""
        data = self._data.pop(sha256, None)
        if data is not None:
            self._size -= len(data) + ENTRY_OVERHEAD
        return data

    def clear(self) -> None:
        """Drop everything held."""
        self._data.clear()
        self._size = 0
