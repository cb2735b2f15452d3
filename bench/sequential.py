"""(5) The original approach: one process, one SDK runner, one image at a time.

Like the tutorial's `classifier.py`: `cv2.imread`, the SDK's own
`get_features_from_image_auto_studio_settings`, `runner.classify`, a print per image. Run:
    .venv/bin/python -m bench.sequential [--images N] [--repeats R]
"""

from __future__ import annotations

import argparse
import io
import time
from contextlib import redirect_stdout
from pathlib import Path

import cv2

from bench.common import MODEL, images, machine, median
from worker.sdk import load_sdk_image_module


def sequential_rate(paths: list[Path]) -> float:
    """Images per second of the original one-at-a-time script."""
    runner = load_sdk_image_module().ImageImpulseRunner(str(MODEL))
    runner.init()
    try:
        t0 = time.perf_counter()
        with redirect_stdout(io.StringIO()):
            for path in paths:
                bgr = cv2.imread(str(path))
                assert bgr is not None, path
                img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                features, _ = runner.get_features_from_image_auto_studio_settings(img)
                res = runner.classify(features)
                scores = res["result"]["classification"]
                print(path.name, max(scores, key=scores.get))
        return len(paths) / (time.perf_counter() - t0)
    finally:
        runner.stop()


def main() -> None:
    """Print the median sequential rate."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    paths = images(args.images)
    print(f"# sequential (original script): {len(paths)} images; {machine()}")
    rates = [sequential_rate(paths) for _ in range(args.repeats)]
    print("runs (images/s):", " ".join(f"{r:.0f}" for r in rates))
    print(f"median: {median(rates):.0f} images/s")


if __name__ == "__main__":
    main()
