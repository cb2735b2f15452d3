"""Reading a whole image file with a size cap, without allocating the cap."""

from __future__ import annotations

import os


def read_capped(path: str | bytes, max_bytes: int) -> bytes:
    """The file's bytes, or its first `max_bytes + 1` if it is larger (the caller refuses it).

    `read(max_bytes + 1)` alone would allocate the whole cap (32 MiB by default) for every
    22 KB image; the file's size bounds the buffer instead. Raises OSError.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(min(size, max_bytes) + 1)
        if len(data) <= max_bytes and len(data) > size:  # it grew while being read: read on
            data += fh.read(max_bytes + 1 - len(data))
    return data
