"""One model per worker process: started once, reused for every image, restarted if it dies."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from allscreen.errors import ModelCrashed, ModelError
from worker.features import Features, features_from_bgr, features_from_rgb
from worker.modelfile import file_sha256

log = logging.getLogger(__name__)


class Runner(Protocol):
    """What the session needs of a runner (GuardedImageRunner, or a fault-injecting stand-in)."""

    def init(self, debug: bool = False) -> dict[str, Any]: ...
    def classify_features(self, features: np.ndarray[Any, Any]) -> dict[str, Any]: ...
    def stop(self) -> None: ...


RunnerFactory = Callable[[], Runner]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """The model's identity and input contract, all from its `hello` reply and file."""

    labels: tuple[str, ...]
    width: int
    height: int
    resize_mode: str
    grayscale: bool
    name: str
    version: str
    sha256: str
    thresholds: str = "[]"  #: JSON of hello's `model_parameters.thresholds` (operating points)

    @classmethod
    def from_hello(cls, hello: dict[str, Any], sha256: str) -> ModelInfo:
        """Read the input contract and identity from a `hello` reply."""
        params = hello["model_parameters"]
        project = hello.get("project", {})
        mode = params.get("image_resize_mode") or "squash"
        return cls(
            labels=tuple(str(x) for x in params["labels"]),
            width=int(params["image_input_width"]),
            height=int(params["image_input_height"]),
            resize_mode="squash" if mode == "not-reported" else str(mode),
            grayscale=int(params["image_channel_count"]) == 1,
            name=str(project.get("name", "unknown")),
            version=str(project.get("deploy_version", "")),
            sha256=sha256,
            thresholds=json.dumps(params.get("thresholds") or []),
        )


@dataclass(frozen=True, slots=True)
class Prediction:
    """The model's answer for one image."""

    scores: dict[str, float]
    inference_ms: float
    attempts: int

    @property
    def label(self) -> str:
        """The top-scoring label."""
        return max(self.scores, key=lambda k: self.scores[k])


class ModelSession:
    """Owns one model process. Restarts it on a crash and retries the image a bounded time."""

    def __init__(self, model_path: Path, *, factory: RunnerFactory, attempts: int) -> None:
        self.model_path = model_path
        self._factory = factory
        self._attempts = attempts
        self._runner: Runner | None = None
        self._info: ModelInfo | None = None
        self._sha256: str | None = None

    @property
    def info(self) -> ModelInfo:
        """The model's info, starting the model if it is not running."""
        self._ensure_started()
        assert self._info is not None
        return self._info

    @property
    def sha256(self) -> str:
        """The model file's sha256, read once, without starting the model."""
        if self._sha256 is None:
            try:
                self._sha256 = file_sha256(self.model_path)
            except OSError as exc:
                raise ModelError(f"cannot read model file {self.model_path}: {exc}") from exc
        return self._sha256

    def _ensure_started(self) -> Runner:
        if self._runner is not None:
            return self._runner
        sha256 = self.sha256
        runner = self._factory()
        hello = runner.init()
        self._info = ModelInfo.from_hello(hello, sha256)
        self._runner = runner
        log.info(
            "model %s v%s started (%s)",
            self._info.name,
            self._info.version,
            ", ".join(self._info.labels),
        )
        return runner

    def features(self, rgb: np.ndarray[Any, Any]) -> Features:
        """Features for an RGB image in this model's input format."""
        return self._features(features_from_rgb, rgb)

    def features_bgr(self, bgr: np.ndarray[Any, Any]) -> Features:
        """`features` of an image in OpenCV's BGR order (`worker.decode.decode_bgr`)."""
        return self._features(features_from_bgr, bgr)

    def _features(self, compute: Callable[..., Features], img: np.ndarray[Any, Any]) -> Features:
        info = self.info
        return compute(
            img,
            mode=info.resize_mode,
            width=info.width,
            height=info.height,
            grayscale=info.grayscale,
        )

    def classify(self, features: Features) -> Prediction:
        """Classify; on a crash or hang restart the model and retry, then give up loudly."""
        last: ModelCrashed | None = None
        for attempt in range(1, self._attempts + 1):
            runner = self._ensure_started()
            t0 = time.perf_counter()
            try:
                reply = runner.classify_features(features)
            except ModelCrashed as exc:
                log.warning("model failed on attempt %d/%d: %s", attempt, self._attempts, exc)
                last = exc
                self.close()
                continue
            scores = {str(k): float(v) for k, v in reply["result"]["classification"].items()}
            # Measured here, round trip included: .eim runners report whole milliseconds,
            # which read 0 for a sub-millisecond model.
            ms = (time.perf_counter() - t0) * 1000.0
            return Prediction(scores=scores, inference_ms=ms, attempts=attempt)
        raise ModelCrashed(f"{last} (gave up after {self._attempts} attempts)")

    def close(self) -> None:
        """Stop the model process, if running."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop()
