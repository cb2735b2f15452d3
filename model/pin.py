"""Pin the reference weights in their launcher, so the launcher's sha256 names the model.

A worker identifies its model by the sha256 of the file ``ALLSCREEN_MODEL`` points at (the
results carry it, and a run is pinned to it). For a Studio export that file holds the
weights. ``allscreen-all.eim`` is a launcher script, so it carries the sha256 of the
``all_cnn96.onnx`` beside it on its ``exec`` line (``--weights-sha256``): retrained weights
change the launcher, hence the identity, and the server refuses to serve weights that do
not match the pin, with a message saying so. ``model.train`` re-pins when it writes the
default weights; after copying weights in by hand, run::

    .venv/bin/python -m model.pin
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "allscreen-all.eim"
WEIGHTS = HERE / "all_cnn96.onnx"
_PIN = re.compile(r"--weights-sha256 ([0-9a-f]{64})")


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pins(launcher: Path, text: str) -> str:
    """The one weights sha256 pinned in ``text`` (``launcher``'s); ValueError otherwise."""
    found = _PIN.findall(text)
    if len(found) != 1:
        raise ValueError(f"{launcher} pins {len(found)} weights sha256 values, expected 1")
    return str(found[0])


def pinned_sha256(launcher: Path = LAUNCHER) -> str:
    """The weights sha256 that ``launcher`` pins; ValueError if it pins none."""
    return _pins(launcher, launcher.read_text(encoding="utf-8"))


def pin(launcher: Path = LAUNCHER, weights: Path = WEIGHTS) -> str:
    """Rewrite ``launcher`` to pin ``weights``; return the new sha256."""
    text = launcher.read_text(encoding="utf-8")
    old, digest = _pins(launcher, text), sha256_of(weights)
    launcher.write_text(text.replace(old, digest), encoding="utf-8")
    return digest


def main() -> int:
    """Pin ``all_cnn96.onnx`` in ``allscreen-all.eim`` (both beside this file)."""
    print(f"{LAUNCHER.name} now pins {WEIGHTS.name} sha256 {pin()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
