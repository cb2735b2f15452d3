"""Checks on a model file before it is started: present, executable, built for this CPU."""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

from allscreen.errors import ModelError

#: ELF e_machine values for the CPUs allscreen meets, and the `uname -m` names they match.
_ELF_MACHINES = {3: "i686", 40: "armv7l", 62: "x86_64", 183: "aarch64"}


def elf_machine(path: Path) -> str | None:
    """The CPU an ELF executable is built for, or None when the file is not ELF (a script)."""
    with path.open("rb") as fh:
        head = fh.read(20)
    if head[:4] != b"\x7fELF" or len(head) < 20:
        return None
    code = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return _ELF_MACHINES.get(code, f"unknown (e_machine {code})")


def check_model_file(path: Path) -> None:
    """Raise ModelError with one clear line if `path` cannot be started on this machine."""
    if not path.exists():
        raise ModelError(f"model file not found: {path} (set ALLSCREEN_MODEL)")
    if not path.is_file():
        raise ModelError(f"model path is not a file: {path}")
    if not os.access(path, os.X_OK):
        raise ModelError(f"model file is not executable: {path} (chmod +x it)")
    machine = elf_machine(path)
    here = platform.machine()
    if machine is not None and machine != here:
        raise ModelError(f"model file {path} is built for {machine}, this machine is {here}")


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
