"""The producer's path key: the secret under which `--store-paths hashed` runs hash their paths.

The key lives in a file on the producer's side (`--path-key FILE` or `ALLSCREEN_PATH_KEY_FILE`)
and never in the database: the database holds only a fingerprint of it, so a resume with
another key is refused with one line instead of matching nothing. Without the key, a stored
hash cannot be checked against a guessed name (an unkeyed hash of `Doe_John_1970/...` could).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from allscreen.errors import ConfigError

KEY_BYTES = 32  #: random bytes in a new key (256 bits, the HMAC-SHA256 block's natural size)
MIN_KEY_CHARS = 32  #: a shorter key file is refused: a guessable key hides nothing
_FINGERPRINT = b"allscreen path key fingerprint"  #: what the stored fingerprint is the MAC of


class PathKey:
    """An HMAC-SHA256 key; each use names its domain, so a path and a case name never collide."""

    def __init__(self, key: bytes, source: str) -> None:
        self._key = key
        self.source = source  #: where it came from, for messages (a file name, never the key)

    def digest(self, domain: bytes, data: bytes) -> str:
        """The hex HMAC-SHA256 of `data` in `domain` (`b"path"`, `b"case"`, `b"patient"`)."""
        return hmac.new(self._key, domain + b"\0" + data, hashlib.sha256).hexdigest()

    @property
    def fingerprint(self) -> str:
        """A MAC of a fixed text: tells keys apart, reveals nothing of the key or any path."""
        return hmac.new(self._key, _FINGERPRINT, hashlib.sha256).hexdigest()


def load_key(path: Path, *, create: bool) -> tuple[PathKey, bool]:
    """The key in file `path`, and whether it was made now.

    With `create`, a missing file is made with a new random key, readable by its owner only.
    """
    if create and not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot create path key {path}: {exc.strerror or exc}") from exc
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(KEY_BYTES) + "\n")
        return load_key(path, create=False)[0], True
    try:
        raw = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read path key {path}: {exc.strerror or exc}") from exc
    if len(raw) < MIN_KEY_CHARS:
        raise ConfigError(
            f"path key {path} holds {len(raw)} characters; it needs at least {MIN_KEY_CHARS} "
            "(a missing file is made with a random key by `submit --store-paths hashed`)"
        )
    return PathKey(raw, str(path)), False
