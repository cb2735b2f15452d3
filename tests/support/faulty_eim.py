"""A fault-injecting `.eim` for tests: the real reference server, except on a poison image.

The poison is a solid magenta image (every pixel 255, 0, 255). On it the server does what
ALLSCREEN_EIM_FAULT says: `crash` (exit at once), `hang` (never answer), `refuse` (an error
reply), or `crash-once:PATH` (crash only if PATH does not exist yet,
creating it, so the restarted model then succeeds). `chaos` plants two faults at once: it
hangs on the magenta poison and crashes on a solid green one (0, 255, 0), for the chaos soak.
Every other image goes through the real model, over the real protocol.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from model import eim_server
from model.eim_protocol import RequestError

_real_classify = eim_server.OnnxClassifier.classify


def is_poison(pixels: Any) -> bool:
    """Whether the model input is the solid magenta poison image (values scaled to 0..1)."""
    return bool(
        (pixels[..., 0] > 0.99).all()
        and (pixels[..., 1] < 0.01).all()
        and (pixels[..., 2] > 0.99).all()
    )


def is_green(pixels: Any) -> bool:
    """Whether the model input is solid green, the `chaos` mode's second poison."""
    return bool(
        (pixels[..., 0] < 0.01).all()
        and (pixels[..., 1] > 0.99).all()
        and (pixels[..., 2] < 0.01).all()
    )


def classify(self: Any, pixels: Any) -> Any:
    """The real classify, with the configured fault on the poison image."""
    fault = os.environ.get("ALLSCREEN_EIM_FAULT", "")
    if fault == "chaos":
        if is_green(pixels):
            os._exit(3)
        fault = "hang"
    if is_poison(pixels):
        if fault == "crash":
            os._exit(3)
        if fault == "hang":
            time.sleep(3600)
        if fault == "refuse":
            raise RequestError("input rejected: (all pixels saturated)")
        if fault.startswith("crash-once:"):
            marker = Path(fault.split(":", 1)[1])
            if not marker.exists():
                marker.touch()
                os._exit(3)
    return _real_classify(self, pixels)


eim_server.OnnxClassifier.classify = classify  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(eim_server.main())
