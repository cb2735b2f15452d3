"""Image → Edge Impulse features, identical to the SDK's studio modes but computed with numpy.

`edge_impulse_linux.image.get_features_from_image_with_studio_mode` returns a Python list built
with `.tolist()`; the worker keeps a float32 array instead, which goes straight into the model's
shared memory.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

Features = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.uint8]


def _letterbox(img: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    h, w = img.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = int(w * scale), int(h * scale)
    top = (height - new_h) // 2
    left = (width - new_w) // 2
    resized = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return cast(
        Pixels,
        cv2.copyMakeBorder(
            resized,
            top,
            height - new_h - top,
            left,
            width - new_w - left,
            cv2.BORDER_CONSTANT,
            value=0,
        ),
    )


def resize_for_model(
    img: npt.NDArray[np.uint8], mode: str, width: int, height: int
) -> npt.NDArray[np.uint8]:
    """Resize an RGB image the way Edge Impulse Studio's `mode` does."""
    if mode == "squash":
        return cast(Pixels, cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
    if mode == "fit-longest":
        return _letterbox(img, width, height)
    if mode == "fit-shortest":
        rows, cols = img.shape[:2]
        aspect = width / height
        if cols / rows > aspect:
            new_w = int(rows * aspect)
            off = (cols - new_w) // 2
            img = img[:, off : off + new_w]
        else:
            new_h = int(cols / aspect)
            off = (rows - new_h) // 2
            img = img[off : off + new_h, :]
        return cast(Pixels, cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
    raise ValueError(f"unsupported resize mode {mode!r}")


def features_from_rgb(
    img: npt.NDArray[np.uint8], *, mode: str, width: int, height: int, grayscale: bool
) -> Features:
    """Packed-pixel features (R<<16 | G<<8 | B per pixel) as float32, exact below 2**24."""
    resized = resize_for_model(img, mode, width, height)
    if grayscale:
        grey = np.asarray(cv2.cvtColor(resized, cv2.COLOR_BGR2GRAY), dtype=np.uint32)
        packed = grey * np.uint32(0x010101)
    else:
        px = resized.astype(np.uint32)
        packed = (px[..., 0] << np.uint32(16)) | (px[..., 1] << np.uint32(8)) | px[..., 2]
    return packed.reshape(-1).astype(np.float32)
