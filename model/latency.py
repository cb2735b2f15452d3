"""Network latency of candidate graphs against the shipped one, measured in the same run.

A gate before a recipe's cross-validation: it needs no accuracy figure, only an untrained
network of the candidate's shape exported exactly as :mod:`model.train` would export it.
Each graph runs on onnxruntime's CPU provider with one intra-op and one inter-op thread,
batch 1; the graphs take turns input by input, so every one sees the same load, and the
medians are printed with their ratio to the shipped file's::

    .venv/bin/python -m model.latency --views 1 2 4 [--arch SPEC] [--inputs 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.evaluate import INPUT_SIZE, REPO_ROOT, make_session
from model.export import export_onnx
from model.net import DEFAULT_ARCH, ServedModel, TinyCNN
from model.views import VIEW_COUNTS, with_views

SHIPPED = REPO_ROOT / "model" / "all_cnn96.onnx"


def candidate(arch: str, views: int, out: Path) -> Path:
    """Export an untrained ``arch`` network with ``views`` test-time views to ``out``."""
    net = TinyCNN(arch, [0.5, 0.5, 0.5], [0.2, 0.2, 0.2])
    export_onnx(ServedModel(with_views(net, views)), out, {}, size=INPUT_SIZE)
    return out


def medians_ms(files: Sequence[Path], inputs: int, warmup: int = 50) -> list[float]:
    """Median ``probs`` latency of each file, batch 1, the files taking turns per input."""
    sessions = [make_session(f) for f in files]
    rng = np.random.default_rng(0)
    times: list[list[float]] = [[] for _ in files]
    for i in range(warmup + inputs):
        x = rng.random((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
        for j, session in enumerate(sessions):
            t0 = time.perf_counter()
            session.run(["probs"], {"image": x})
            if i >= warmup:
                times[j].append((time.perf_counter() - t0) * 1e3)
    return [float(np.median(t)) for t in times]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description="Latency of candidate graphs against the shipped.")
    p.add_argument("--arch", default=DEFAULT_ARCH)
    p.add_argument("--views", type=int, nargs="+", default=[1], choices=VIEW_COUNTS)
    p.add_argument("--inputs", type=int, default=500)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = [SHIPPED] + [
            candidate(args.arch, v, Path(tmp) / f"views{v}.onnx") for v in args.views
        ]
        names = ["shipped"] + [f"{args.arch}, {v} view(s)" for v in args.views]
        medians = medians_ms(files, args.inputs)
    for name, ms in zip(names, medians, strict=True):
        print(f"{name}: median {ms:.3f} ms, {ms / medians[0]:.2f}x the shipped file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
