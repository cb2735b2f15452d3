"""What a run stores of each image's path, and how the producer finds the file again.

`submit --store-paths` chooses, once per run:

- `absolute` (the default, as before): the path relative to the archive root, for people, and
  the absolute location, so `resume`, the report and the review page read the file directly.
- `relative`: the relative path only. Whoever reads a file again names the root (`resume
  --root`, `ALLSCREEN_ARCHIVE_ROOT` for the report and the review page).
- `hashed`: an HMAC-SHA256 of the relative path under the producer's key (`producer.path_key`),
  and no location; case and patient names are hashed the same way. The producer, holding the
  key and the root, finds a run's files again by walking the archive and matching hashes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from sqlalchemy import Engine, exists, select

from allscreen.errors import ConfigError, PathMismatch
from allscreen.schema import Image, Result, Run
from producer.archive import Found, scan
from producer.cases import CaseName
from producer.path_key import PathKey, load_key

PathMode = Literal["absolute", "relative", "hashed"]
PATH_MODES: tuple[PathMode, ...] = ("absolute", "relative", "hashed")
DEFAULT_PATH_MODE: PathMode = "absolute"  #: what runs stored before the choice existed
NAME_DIGEST_CHARS = 20  #: hex kept of a hashed case or patient name (80 bits; shown to people)

#: (stored location, stored path) → the file to read on this machine, or None if not found.
Locator = Callable[[bytes, str], bytes | None]


def _absolute(location: bytes, _path: str) -> bytes | None:
    return location


@dataclass(slots=True)
class PathStore:
    """How a submission stores its images' paths; in `hashed` mode it also remembers where
    each hash it made lies, so the enqueuer can read the files of this scan."""

    mode: PathMode = DEFAULT_PATH_MODE
    root: bytes = b""  #: the archive root (absolute), for `relative` and `hashed`
    key: PathKey | None = None  #: for `hashed`
    _where: dict[bytes, bytes] = field(default_factory=dict)  #: path digest → location

    def stored(self, item: Found) -> tuple[str, bytes]:
        """The (`path`, `location`) columns of a found image."""
        if self.mode == "absolute":
            return item.display, item.location
        if self.mode == "relative":
            return item.display, item.relative
        assert self.key is not None
        digest = self.key.digest(b"path", item.relative)
        self._where[bytes.fromhex(digest)] = item.location
        return digest, b""

    def case(self, named: CaseName | None) -> CaseName | None:
        """A case (and patient) name as stored: hashed in `hashed` mode, else as given."""
        if named is None or self.mode != "hashed":
            return named
        assert self.key is not None
        case, patient = named
        hashed = self.key.digest(b"case", case.encode())[:NAME_DIGEST_CHARS]
        who = None if patient is None else self.key.digest(b"patient", patient.encode())
        return f"case-{hashed}", None if who is None else f"patient-{who[:NAME_DIGEST_CHARS]}"

    def locate(self, location: bytes, path: str) -> bytes | None:
        """Where a stored image of this submission lies (a Locator)."""
        if self.mode == "absolute":
            return location
        if self.mode == "relative":
            return os.path.join(self.root, location)
        return self._where.get(bytes.fromhex(path))


def store_for_submit(mode: PathMode, paths: list[Path], key: PathKey | None) -> PathStore:
    """The store of a submission; `relative` and `hashed` need one folder as the root."""
    if mode == "absolute":
        return PathStore()
    if len(paths) != 1 or paths[0].is_file():  # a missing one is submit's to report
        raise ConfigError(
            f"--store-paths {mode} needs exactly one folder, the archive root, "
            "so that every stored path is relative to it"
        )
    if mode == "hashed" and key is None:
        raise ConfigError(
            "--store-paths hashed needs a key file: --path-key FILE or ALLSCREEN_PATH_KEY_FILE "
            "(a missing file is made with a new random key)"
        )
    root = os.path.abspath(os.fsencode(paths[0]))
    return PathStore(mode, root, key if mode == "hashed" else None)


def check_run_mode(name: str, mode: str, key_id: str | None, store: PathStore) -> None:
    """Refuse adding to run `name` (stored in `mode`, under key `key_id`) in another path
    mode, or hashing under another key."""
    if mode != store.mode:
        raise PathMismatch(
            f"run {name} stores {mode} paths; submit to it with --store-paths {mode} "
            "(or name a new run)"
        )
    if store.key is not None and store.key.fingerprint != key_id:
        raise PathMismatch(f"path key {store.key.source} is not the key run {name} was made with")


def _pending(engine: Engine, run_id: int) -> list[tuple[str, bytes]]:
    """(path, location) of the run's images without a result."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Image.path, Image.location).where(
                Image.run_id == run_id,
                ~exists().where(Result.run_id == run_id, Result.image_id == Image.id),
            )
        ).all()
    return [(str(p), bytes(loc)) for p, loc in rows]


def locator_for_run(
    engine: Engine, run: Run, *, root: Path | None, key_file: Path | None, err: TextIO
) -> Locator:
    """How to find the files of `run` still without a result, for `resume` (producer side).

    A `relative` run needs its root; a `hashed` run its root and key file (read only for such
    a run), and the archive is walked
    once to match hashes. A key other than the run's, or a root under which none of the
    images still to do lies, is refused with one line (PathMismatch).
    """
    mode = run.path_mode
    if mode == "absolute":
        return _absolute
    if root is None:
        raise PathMismatch(
            f"run {run.name} stores {mode} paths: give the archive root it was submitted "
            f"from (--root PATH)"
        )
    if not root.is_dir():
        raise PathMismatch(f"archive root {root} is not a folder")
    base = os.path.abspath(os.fsencode(root))
    pending = _pending(engine, run.id)
    if mode == "relative":
        if pending and not any(os.path.exists(os.path.join(base, loc)) for _, loc in pending):
            raise _not_under(run, root, len(pending))
        return lambda location, _path: os.path.join(base, location)
    if key_file is None:
        raise PathMismatch(
            f"run {run.name} stores keyed hashes of its paths: give its key "
            "(--path-key FILE or ALLSCREEN_PATH_KEY_FILE)"
        )
    key = load_key(key_file, create=False)[0]
    if key.fingerprint != run.path_key_id:
        raise PathMismatch(f"path key {key.source} is not the key run {run.name} was made with")
    wanted = {bytes.fromhex(p) for p, _ in pending}
    where: dict[bytes, bytes] = {}
    if wanted:
        for item in scan([base], "none"):
            digest = bytes.fromhex(key.digest(b"path", item.relative))
            if digest in wanted:
                where[digest] = item.location
        if not where:
            raise _not_under(run, root, len(wanted))
        err.write(f"found {len(where)} of the {len(wanted)} images still to do under {root}\n")
    return lambda _location, path: where.get(bytes.fromhex(path))


def _not_under(run: Run, root: Path, n: int) -> PathMismatch:
    return PathMismatch(
        f"none of the {n} images of run {run.name} still to do is under {root}"
        f"{' with this key' if run.path_mode == 'hashed' else ''}: give the archive root "
        "the run was submitted from"
    )
