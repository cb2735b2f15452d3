"""The served classifier: an onnxruntime session on one core, checked against its pin."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from model.eim_config import DEFAULT_ONNX, ServerConfig
from model.eim_protocol import ModelInfo, RequestError
from model.pin import sha256_of


class OnnxClassifier:
    """An onnxruntime session on one core, described by its ONNX metadata."""

    def __init__(self, path: Path, *, delay_ms: float = 0.0, latency_ms: float = 0.0) -> None:
        """Load ``path`` and run one warm-up inference.

        Raises:
            Exception: whatever onnxruntime raises for a missing or broken model, or
                ValueError if the metadata, input shape or output shape break the contract.
        """
        import onnxruntime as ort  # here, so a missing onnxruntime is served as an error

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # one server process per core is the deployment model
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.info = ModelInfo.from_metadata(self._session.get_modelmeta().custom_metadata_map)
        self._delay_s = delay_ms / 1000.0
        self._latency_s = latency_ms / 1000.0
        inp = self._session.get_inputs()[0]
        want = [self.info.height, self.info.width, 3]
        dims = list(inp.shape)[1:]
        fixed = [d if isinstance(d, int) else w for d, w in zip(dims, want, strict=False)]
        if len(dims) != 3 or fixed != want:  # symbolic dims (None, "N") accept anything
            raise ValueError(f"input {inp.name!r} has shape {inp.shape}, metadata says {want}")
        self._input = inp.name
        outputs = [o.name for o in self._session.get_outputs()]
        self._output = "probs" if "probs" in outputs else outputs[0]
        self.classify(np.zeros((1, *want), dtype=np.float32))  # warm-up, and checks output

    def classify(self, pixels: npt.NDArray[np.float32]) -> tuple[list[float], float]:
        """Return one score per label and the inference time in ms (emulated time included).

        An emulated device first adds ``delay_ms``, then waits until ``latency_ms`` have
        passed since the inference began.

        Raises:
            RequestError: if the model returns the wrong number of scores or non-finite ones.
        """
        t0 = time.perf_counter()
        (out,) = self._session.run([self._output], {self._input: pixels})
        if self._delay_s > 0:
            time.sleep(self._delay_s)
        if self._latency_s > 0:
            time.sleep(max(0.0, t0 + self._latency_s - time.perf_counter()))
        ms = (time.perf_counter() - t0) * 1000.0
        scores = np.asarray(out, dtype=np.float64).reshape(-1)
        if scores.size != len(self.info.labels) or not np.all(np.isfinite(scores)):
            raise RequestError(
                f"model returned {scores.size} scores, or a non-finite one, "
                f"for {len(self.info.labels)} labels"
            )
        return scores.tolist(), ms


def weights_mismatch(config: ServerConfig) -> str:
    """Why the default weights cannot be served under the launcher's pin ('' if they can)."""
    path = config.onnx_path
    if not config.weights_sha256 or path.resolve() != DEFAULT_ONNX or not path.is_file():
        return ""
    digest = sha256_of(path)
    if digest == config.weights_sha256:
        return ""
    return (
        f"weights {path} (sha256 {digest[:12]}) are not the ones the launcher pins "
        f"({config.weights_sha256[:12]}); if they were retrained on purpose, run "
        "`python -m model.pin` so that the model's identity changes with them"
    )


def load_classifier(config: ServerConfig) -> tuple[OnnxClassifier | None, str]:
    """Load the model; on failure return the reason, which ``hello`` will then report."""
    mismatch = weights_mismatch(config)
    if mismatch:
        return None, mismatch
    try:
        return OnnxClassifier(
            config.onnx_path, delay_ms=config.delay_ms, latency_ms=config.latency_ms
        ), ""
    except Exception as exc:  # any load failure is served as an error, never a hang
        return None, f"model failed to load: {config.onnx_path}: {type(exc).__name__}: {exc}"
