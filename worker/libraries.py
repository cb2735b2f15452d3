"""Whether the shared libraries a native `.eim` links against can be found on this machine.

A GPU build for the Jetson links against JetPack's TensorRT, cuDNN and CUDA libraries. In a
container those come from the host only when the container runs with the NVIDIA runtime, so a
missing `libnvinfer.so.8` is the usual sign of a container started without it. `ldd` lists
every unresolved library at once, where starting the model would name only the first.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_LDD_TIMEOUT = 15.0  #: seconds `ldd` may take (it only maps libraries, it runs no model code)
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")

#: Library name prefixes that JetPack (CUDA, cuDNN, TensorRT, the Tegra driver) provides.
JETPACK_LIBRARIES = (
    "libnvinfer",
    "libnvonnxparser",
    "libnvparsers",
    "libcudart",
    "libcublas",
    "libcudnn",
    "libcuda.",
    "libnvrm",
    "libnvos",
)

NVIDIA_HINT = (
    "these come with JetPack: in a container, run it with the NVIDIA runtime "
    "(`runtime: nvidia`, see docs/add-a-jetson-nano.md); on the device, install JetPack's "
    "CUDA, cuDNN and TensorRT"
)


@dataclass(frozen=True, slots=True)
class LibraryReport:
    """What `ldd` found: the unresolved libraries, or why it could not tell."""

    missing: tuple[str, ...]
    resolved: int
    note: str = ""  #: set when nothing was checked (static binary, no `ldd`)

    @property
    def jetpack_missing(self) -> bool:
        """Whether any missing library is one JetPack provides."""
        return any(name.startswith(JETPACK_LIBRARIES) for name in self.missing)


def check_libraries(path: Path) -> LibraryReport:
    """Run `ldd` on an ELF model and report the libraries it cannot resolve."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return LibraryReport((), 0, "ldd is not installed; libraries not checked")
    try:
        proc = subprocess.run(
            [ldd, str(path)],
            capture_output=True,
            text=True,
            timeout=_LDD_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return LibraryReport((), 0, f"ldd took over {_LDD_TIMEOUT:g} s; libraries not checked")
    text = proc.stdout + proc.stderr
    if "not a dynamic executable" in text or "statically linked" in text:
        return LibraryReport((), 0, "statically linked")
    missing: list[str] = []
    resolved = 0
    for line in proc.stdout.splitlines():
        m = _NOT_FOUND.match(line)
        if m:
            missing.append(m.group(1))
        elif "=>" in line:
            resolved += 1
    return LibraryReport(tuple(missing), resolved)
