"""Importing `edge_impulse_linux` safely.

SDK 1.2.2 imports `pyaudio` in its package `__init__` and calls `exit(1)` from `image.py` when
OpenCV is missing. Both are turned into a ModelError with an actionable message here.
"""

from __future__ import annotations

from types import ModuleType
from typing import cast

from allscreen.errors import ModelError


def load_sdk_image_module() -> ModuleType:
    """Return `edge_impulse_linux.image`, or raise ModelError saying what is missing."""
    try:
        import cv2  # noqa: F401  (image.py exits the process without it)
    except ImportError as exc:
        raise ModelError(f"OpenCV is missing ({exc}); install opencv-python-headless") from exc
    try:
        import edge_impulse_linux.image as image
    except ImportError as exc:
        raise ModelError(
            f"edge_impulse_linux cannot be imported ({exc}); it needs numpy, six and PyAudio "
            "(PyAudio builds against portaudio19-dev)"
        ) from exc
    except SystemExit as exc:
        raise ModelError("edge_impulse_linux refused to import (OpenCV missing)") from exc
    return cast(ModuleType, image)
