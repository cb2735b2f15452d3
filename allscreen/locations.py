"""Where a stored image location can be read on the read side (report thumbnails, review page).

What a run stores depends on `submit --store-paths` (`producer.stored_paths`): an absolute
location is read as it is; a relative one only under an archive root this machine names
(`ALLSCREEN_ARCHIVE_ROOT`), never against the working directory; a hashed run stores none.
"""

from __future__ import annotations

import os
from pathlib import Path


def readable_location(location: bytes, archive_root: Path | None) -> bytes | None:
    """The file to open for a stored `location`, or None when this machine cannot know it."""
    if not location:
        return None  # a hashed run: only the producer, with its key, can find the file
    if os.path.isabs(location):
        return location
    if archive_root is None:
        return None
    return os.path.join(os.fsencode(archive_root), location)
