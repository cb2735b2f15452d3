"""(9) Large images: what a reduced decode or a reduced copy changes, and what it saves.

For each kind of large image (bench.large_set: the shared `test` split upscaled with noise to
2 MP and 5 MP JPEG fields and 5 MP TIFFs), every image goes through the worker's feature path
(`worker.prepare.features_of`) in full and with the reduced decode (the shipped margin), in
alternating order, timing the decode and the resize; then through fixed DCT scales 1/2, 1/4,
1/8, and through the producer's reduced copy (`producer.shrink`, `--ship-sides`). Each variant's
96x96 model input is compared with the full path's (mean and max absolute difference per
channel, 0-255) and classified by the reference model: agreement is the share of images whose
top label equals the full path's. Run:
    nice -n 5 .venv/bin/python -m bench.large_decode [--limit N] [--kinds 2mp-jpeg ...]
                                                      [--ship-sides 192 384]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from allscreen.reduced import SCALABLE_FORMATS, imdecode_scaled, model_floor, reduction
from allscreen.settings import Settings
from bench.common import machine, median, model_session
from bench.large_set import KINDS, Kind, large_images, split_images
from producer.shrink import shrink_for_wire
from worker.decode import decode_bgr
from worker.features import Features, features_from_bgr
from worker.session import ModelInfo, ModelSession

FIXED_SCALES = (2, 4, 8)
#: Reduced copies measured: twice and four times the reference model's 96 px input.
DEFAULT_SHIP_SIDES = (192, 384)


@dataclass
class Variant:
    """One way to compute the model input, compared with the full path over a kind's images."""

    name: str
    mean_abs: list[float] = field(default_factory=list)
    max_abs: list[int] = field(default_factory=list)
    agree: int = 0
    correct: int = 0
    nbytes: list[int] = field(default_factory=list)

    def add(self, px: np.ndarray, ref: np.ndarray, same: bool, right: bool, size: int) -> None:
        """Record one image's difference from the full path and its prediction."""
        diff = np.abs(px.astype(np.int16) - ref.astype(np.int16))
        self.mean_abs.append(float(diff.mean()))
        self.max_abs.append(int(diff.max()))
        self.agree += same
        self.correct += right
        self.nbytes.append(size)


def pixels(features: Features) -> np.ndarray:
    """The model input's 8-bit channels back out of packed features."""
    packed = features.astype(np.uint32)
    return np.stack([(packed >> s) & 0xFF for s in (16, 8, 0)], axis=-1).astype(np.uint8)


Decoder = Callable[[], npt.NDArray[np.uint8]]


def _scaled(data: bytes, scale: int) -> npt.NDArray[np.uint8]:
    img = imdecode_scaled(data, scale)
    assert img is not None
    return img


def features_for(bgr: npt.NDArray[np.uint8], info: ModelInfo) -> Features:
    """Features of a decoded image for the model, as the worker computes them."""
    return features_from_bgr(
        bgr, mode=info.resize_mode, width=info.width, height=info.height, grayscale=info.grayscale
    )


def timed(decode: Decoder, info: ModelInfo) -> tuple[float, float]:
    """(decode ms, resize ms) of one pass: `decode` then the features of its result."""
    t0 = time.perf_counter()
    bgr = decode()
    t1 = time.perf_counter()
    features_for(bgr, info)
    return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000


def measure(
    kind: Kind, session: ModelSession, *, limit: int | None, margin: float, ship_sides: list[int]
) -> tuple[dict[str, Variant], dict[str, list[float]]]:
    """Variants and timings (full/reduced decode and resize, ms per image) for one kind."""
    info = session.info
    floor = model_floor(info.width, info.height, margin)
    limits = Settings()
    cap: dict[str, Any] = {
        "max_bytes": limits.max_image_bytes,
        "max_pixels": limits.max_image_pixels,
    }
    variants: dict[str, Variant] = {}
    times: dict[str, list[float]] = {
        k: [] for k in ("full_decode", "full_resize", "red_decode", "red_resize", "scale")
    }

    def label(f: Features) -> str:
        return session.classify(f).label

    for i, (_, truth, data) in enumerate(large_images(kind, split_images("test", limit))):
        passes: list[tuple[str, Decoder]] = [
            ("full", partial(decode_bgr, data, **cap)),
            ("red", partial(decode_bgr, data, **cap, at_least=floor)),
        ]
        for name, fn in passes if i % 2 == 0 else passes[::-1]:
            dec, res = timed(fn, info)
            times[f"{name}_decode"].append(dec)
            times[f"{name}_resize"].append(res)
        ref_f = features_for(decode_bgr(data, **cap), info)
        ref, ref_label = pixels(ref_f), label(ref_f)
        scalable = kind.ext == "jpg" and "JPEG" in SCALABLE_FORMATS
        scale = reduction((kind.width, kind.height), floor) if scalable else 1
        times["scale"].append(scale)
        candidates: list[tuple[str, Decoder, int]] = [
            (f"reduced (margin {margin:g}, 1/{scale})", passes[1][1], len(data))
        ]
        if scalable:
            for s in FIXED_SCALES:
                candidates.append((f"fixed 1/{s}", partial(_scaled, data, s), len(data)))
        for side in ship_sides:
            shipped = shrink_for_wire(data, side=side, max_pixels=limits.max_image_pixels)
            candidates.append(
                (f"shipped (side {side})", partial(decode_bgr, shipped, **cap), len(shipped))
            )
        for name, fn, size in candidates:
            f = features_for(fn(), info)
            lab = label(f)
            v = variants.setdefault(name, Variant(name))
            v.add(pixels(f), ref, lab == ref_label, lab == truth, size)
        v = variants.setdefault("full", Variant("full"))
        v.add(ref, ref, True, ref_label == truth, len(data))
    return variants, times


def main() -> None:
    """Print, per kind: speed of the reduced decode against the full one, and per variant the
    difference in the model input and the agreement of the top label."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None, help="images of `test` (default all)")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--margin", type=float, default=Settings().decode_margin)
    ap.add_argument("--ship-sides", type=int, nargs="+", default=list(DEFAULT_SHIP_SIDES))
    args = ap.parse_args()
    print(f"# large images: reduced decode and reduced copies; {machine()}")
    session = model_session()
    for name in args.kinds:
        kind = KINDS[name]
        variants, t = measure(
            kind, session, limit=args.limit, margin=args.margin, ship_sides=args.ship_sides
        )
        n = len(t["full_decode"])
        full = [d + r for d, r in zip(t["full_decode"], t["full_resize"], strict=True)]
        red = [d + r for d, r in zip(t["red_decode"], t["red_resize"], strict=True)]
        per_image = [f / r for f, r in zip(full, red, strict=True)]
        print(
            f"\n## {kind.name} ({kind.width}x{kind.height}, {n} images, median "
            f"{median(variants['full'].nbytes) / 1e6:.2f} MB)\n"
            f"full: decode {median(t['full_decode']):.1f} + resize "
            f"{median(t['full_resize']):.1f} ms; reduced 1/{int(median(t['scale']))}: decode "
            f"{median(t['red_decode']):.1f} + resize {median(t['red_resize']):.1f} ms; "
            f"full/reduced per image median {median(per_image):.2f}x "
            f"(ratio of medians {median(full) / median(red):.2f}x)"
        )
        print(
            "| path | bytes (median) | mean abs diff | max abs diff | top label = full | accuracy |"
        )
        print("|---|---|---|---|---|---|")
        for v in variants.values():
            print(
                f"| {v.name} | {median(v.nbytes) / 1e3:.0f} KB | {np.mean(v.mean_abs):.3f} | "
                f"{max(v.max_abs)} | {v.agree}/{n} = {100 * v.agree / n:.2f}% | "
                f"{100 * v.correct / n:.2f}% |",
                flush=True,
            )
    session.close()


if __name__ == "__main__":
    main()
