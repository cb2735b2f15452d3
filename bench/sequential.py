"""(5) The original approach: one process, one SDK runner, one image at a time.

Like the tutorial's `classifier.py`: `cv2.imread`, the SDK's own
`get_features_from_image_auto_studio_settings`, `runner.classify`, a print per image. Run:
    .venv/bin/python -m bench.sequential [--images N] [--repeats R] [--no-pipeline]

Each repeat also runs the pipeline (`bench.pipeline`'s default set-up) right after, so the
speed-up is measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

import cv2

from allscreen.settings import Settings
from bench.common import MODEL, images, machine, median
from bench.pipeline import pipeline_rate
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
    """Alternate the sequential script and the pipeline; print medians and the speed-up."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-pipeline", action="store_true", help="the sequential script only")
    args = ap.parse_args()
    paths = images(args.images)
    print(f"# sequential (original script) vs pipeline: {len(paths)} images; {machine()}")
    seq: list[float] = []
    pipe: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            seq.append(sequential_rate(paths))
            line = f"run {i + 1}: sequential {seq[-1]:.0f} img/s"
            if not args.no_pipeline:
                procs = mp.cpu_count()
                pipe.append(pipeline_rate(procs, Settings().batch_size, Path(tmp))[0])
                line += f", pipeline ({procs} processes) {pipe[-1]:.0f} img/s"
                line += f", speed-up {pipe[-1] / seq[-1]:.2f}x"
            print(line, flush=True)
    print(f"median: sequential {median(seq):.0f} images/s", end="")
    if pipe:
        speedups = [p / s for p, s in zip(pipe, seq, strict=True)]
        print(f", pipeline {median(pipe):.0f} images/s, speed-up {median(speedups):.2f}x")
    else:
        print()


if __name__ == "__main__":
    main()
