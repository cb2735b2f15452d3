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

#: Channel weights of the packed pixel, for images in RGB and in BGR order.
_WEIGHTS_RGB = np.array([[65536.0, 256.0, 1.0]], dtype=np.float32)
_WEIGHTS_BGR = np.array([[1.0, 256.0, 65536.0]], dtype=np.float32)


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
    return _packed(img, red=0, mode=mode, width=width, height=height, grayscale=grayscale)


def features_from_bgr(
    img: npt.NDArray[np.uint8], *, mode: str, width: int, height: int, grayscale: bool
) -> Features:
    """`features_from_rgb` of the same image given in OpenCV's BGR order, equal to the last
    bit: resizing treats channels alone, so the full-size image needs no conversion to RGB."""
    return _packed(img, red=2, mode=mode, width=width, height=height, grayscale=grayscale)


def _packed(
    img: npt.NDArray[np.uint8], *, red: int, mode: str, width: int, height: int, grayscale: bool
) -> Features:
    resized = resize_for_model(img, mode, width, height)
    if grayscale:
        # The RGB path converts with BGR2GRAY (the SDK's call, weights swapped on RGB data):
        # RGB2GRAY on BGR data gives the same weights to the same colours.
        code = cv2.COLOR_BGR2GRAY if red == 0 else cv2.COLOR_RGB2GRAY
        grey = np.asarray(cv2.cvtColor(resized, code), dtype=np.uint32)
        packed = grey * np.uint32(0x010101)
        return packed.reshape(-1).astype(np.float32)
    # R * 65536 + G * 256 + B as one weighted sum over the channels (cv2.transform), in
    # float32: every partial sum is an integer below 2**24, so it is exact, and it costs a
    # quarter of the shifts and ORs on uint32 arrays it replaces.
    weights = _WEIGHTS_RGB if red == 0 else _WEIGHTS_BGR
    return cast(Features, cv2.transform(resized.astype(np.float32), weights).reshape(-1))
