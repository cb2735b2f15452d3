"""A Studio-like `.eim` for tests: labels that are not the ALL ones, and no screening policy.

A model exported from Edge Impulse Studio knows nothing of allscreen's screening: its labels
are whatever the project chose and its `hello` carries no `screening` threshold. This one
serves the reference server's protocol (launcher, `hello`, shared memory, JSON over the Unix
socket) with a small classifier of its own instead of the ONNX session:

- labels `artifact`, `normal`, `abnormal`, input 96x96 RGB, like the reference model;
- scores: the softmax of `SCORE_GAIN` times the mean red, green and blue of the image, so a
  reddish image is mostly `artifact`, a greenish one `normal`, a bluish one `abnormal`, and a
  greyish one close to a third each (deterministic; different images get different calls);
- `model_parameters.thresholds` is `[]`, or the JSON list in `ALLSCREEN_EIM_STUDIO_THRESHOLDS`
  (so a test can give the model an operating point of its own). An unreadable value is served
  as the error of every request, as the reference server serves a broken model.

The variable is `ALLSCREEN_EIM_…` because the settings refuse any other unknown `ALLSCREEN_*`
variable in a worker's environment, which the model inherits.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from model import eim_server
from model.eim_protocol import ModelInfo
from model.eim_protocol import hello_reply as reference_hello
from model.eim_shm import FeatureShm

THRESHOLDS_VARIABLE = "ALLSCREEN_EIM_STUDIO_THRESHOLDS"  #: JSON list for hello's thresholds
LABELS = ("artifact", "normal", "abnormal")  #: score i follows colour channel i (R, G, B)
SCORE_GAIN = 6.0  #: logit per unit of mean channel value: a pure colour scores about 0.98
INFO = ModelInfo(
    labels=LABELS,
    width=96,
    height=96,
    project_name="smear-qc (Studio-like test model)",
    deploy_version=7,
    project_id=4242,
    project_owner="studio-test",
)


def scores_of(pixels: npt.NDArray[np.float32]) -> list[float]:
    """Softmax of `SCORE_GAIN` x the mean of each channel (`pixels` in 0..1, NHWC)."""
    means = pixels.reshape(-1, 3).astype(np.float64).mean(axis=0)
    logits = SCORE_GAIN * means
    exp = np.exp(logits - logits.max())
    scores: list[float] = (exp / exp.sum()).tolist()
    return scores


class MeanColourClassifier(eim_server.OnnxClassifier):
    """The reference server's classifier interface with no ONNX session behind it."""

    def __init__(self) -> None:  # no super().__init__(): there are no weights to load
        """Describe the model; nothing to load."""
        self.info = INFO

    def classify(self, pixels: npt.NDArray[np.float32]) -> tuple[list[float], float]:
        """One score per label (see `scores_of`) and the time it took, in ms."""
        t0 = time.perf_counter()
        scores = scores_of(pixels)
        return scores, (time.perf_counter() - t0) * 1000.0


def thresholds_from(environ: dict[str, str]) -> list[Any]:
    """Hello's thresholds: `[]`, or the JSON list in `THRESHOLDS_VARIABLE`.

    Raises:
        ValueError: if the variable holds something other than a JSON list.
    """
    raw = environ.get(THRESHOLDS_VARIABLE, "").strip()
    if not raw:
        return []
    value = json.loads(raw)
    if not isinstance(value, list):
        raise ValueError(f"{THRESHOLDS_VARIABLE} must be a JSON list, got {raw[:80]!r}")
    return value


def main() -> int:
    """Serve this classifier through the reference server's own main loop."""
    try:
        thresholds, error = thresholds_from(dict(os.environ)), ""
    except ValueError as exc:
        thresholds, error = [], f"bad {THRESHOLDS_VARIABLE}: {exc}"
    classifier = MeanColourClassifier()

    def hello_reply(
        rid: int, info: ModelInfo, shm: FeatureShm | None, shm_error: str = ""
    ) -> dict[str, Any]:
        reply = reference_hello(rid, info, shm, shm_error)
        reply["model_parameters"]["thresholds"] = thresholds
        return reply

    def load_classifier(
        config: eim_server.ServerConfig,
    ) -> tuple[eim_server.OnnxClassifier | None, str]:
        return (None, error) if error else (classifier, "")

    # Both names are looked up in eim_server's globals when a session says hello or loads.
    eim_server.hello_reply = hello_reply  # type: ignore[attr-defined]
    eim_server.load_classifier = load_classifier  # type: ignore[attr-defined]
    return eim_server.main()


if __name__ == "__main__":
    sys.exit(main())
