"""From an image's bytes to the model's features, as every worker computes them.

Only the model's input contract (`ModelInfo`, read once from its `hello`) is needed, never the
model session itself, so several decode threads can run this while the session classifies or
restarts its model (`worker.prefetch`).
"""

from __future__ import annotations

from allscreen.reduced import model_floor
from allscreen.settings import Settings
from worker.decode import decode_bgr
from worker.features import Features, features_from_bgr
from worker.session import ModelInfo


def decode_floor(info: ModelInfo, settings: Settings) -> tuple[int, int] | None:
    """The fewest pixels a reduced decode must keep for this model, or None to decode in full
    (`ALLSCREEN_REDUCED_DECODE`, `ALLSCREEN_DECODE_MARGIN`)."""
    if not settings.reduced_decode:
        return None
    return model_floor(info.width, info.height, settings.decode_margin)


def features_of(data: bytes, *, info: ModelInfo, settings: Settings) -> Features:
    """Decode `data` (at reduced scale where the model allows) and resize it for the model the
    way the SDK does; ImageRejected says why an image cannot be used."""
    bgr = decode_bgr(
        data,
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        at_least=decode_floor(info, settings),
    )
    return features_from_bgr(
        bgr, mode=info.resize_mode, width=info.width, height=info.height, grayscale=info.grayscale
    )
