"""A stubbed `.eim` for benchmarks: the real reference server with a constant classifier.

Everything the worker sees is real (the launcher, `hello` with the reference model's labels
and input size, shared memory, the JSON protocol over the Unix socket); only the inference
is replaced by a constant answer, so no onnxruntime session runs per image and the workers
drain batches as fast as the rest of the pipeline allows. Only the benchmarks use it:
    ALLSCREEN_MODEL=bench/stub.eim ALLSCREEN_EIM_PYTHON=$(which python) allscreen worker
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import eim_server

STUB_TOP_SCORE = 0.97  #: the constant score of the first label; the rest share what is left


def classify(self: Any, pixels: Any) -> tuple[list[float], float]:
    """One fixed score per label, in microseconds; `pixels` is not looked at."""
    t0 = time.perf_counter()
    n = len(self.info.labels)
    rest = (1.0 - STUB_TOP_SCORE) / max(n - 1, 1)
    scores = [STUB_TOP_SCORE] + [rest] * (n - 1)
    return scores, (time.perf_counter() - t0) * 1000.0


# The session is still opened once at start-up to read the model's metadata (labels, input
# size), so `hello` matches the reference model; its warm-up inference is the stub too.
eim_server.OnnxClassifier.classify = classify  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(eim_server.main())
