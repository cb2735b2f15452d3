"""The POSIX shared memory segment that ``classify_shm`` reads its features from."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import resource_tracker, shared_memory

import numpy as np
import numpy.typing as npt


@contextmanager
def _untracked() -> Iterator[None]:
    """Keep multiprocessing's resource tracker out of a segment's life.

    On Python 3.11 ``SharedMemory`` registers each segment with the resource tracker, which
    means starting a tracker process, and that process "cleans up" (with a leak warning)
    any segment still registered when we exit. The server unlinks its own segment, so it
    suppresses the registration instead of registering and unregistering.
    """
    saved = resource_tracker.register, resource_tracker.unregister

    def skip(name: object, rtype: str) -> None:
        """Do not track."""

    resource_tracker.register = resource_tracker.unregister = skip
    try:
        yield
    finally:
        resource_tracker.register, resource_tracker.unregister = saved


class FeatureShm:
    """The POSIX shared memory segment of ``classify_shm``: ``elements`` float32 features."""

    def __init__(self, elements: int, name: str) -> None:
        """Create the segment ``/<name>``.

        Raises:
            OSError: if it cannot be created (e.g. it exists, or /dev/shm is missing).
        """
        with _untracked():
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=elements * 4)
        self.elements = elements
        self.name = "/" + self._shm.name  # as shm_open(3) takes it; the SDK strips the "/"
        self.array: npt.NDArray[np.float32] = np.ndarray(
            (elements,), dtype=np.float32, buffer=self._shm.buf
        )

    def close(self) -> None:
        """Unmap and unlink the segment."""
        del self.array  # the mapping cannot close while a view exports it
        with _untracked():
            self._shm.close()
            self._shm.unlink()
