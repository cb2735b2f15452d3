"""Fixtures for the ``.eim`` model server tests: the launcher, the model, SDK runners.

Every server is started the way a worker starts one, through ``edge_impulse_linux``'s
runner classes and ``model/allscreen-all.eim``, and every one is stopped and reaped
after the test. ``ALLSCREEN_TEST_ONNX`` points the tests at a candidate model file
instead of ``model/all_cnn96.onnx`` (to check a model before it replaces the committed one).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from edge_impulse_linux.image import ImageImpulseRunner
from edge_impulse_linux.runner import ImpulseRunner

REPO_ROOT = Path(__file__).resolve().parents[2]
EIM_PATH = REPO_ROOT / "model" / "allscreen-all.eim"
ONNX_PATH = Path(os.environ.get("ALLSCREEN_TEST_ONNX") or REPO_ROOT / "model" / "all_cnn96.onnx")
DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "all"
SERVER_ENV = (
    "ALLSCREEN_EIM_ONNX",
    "ALLSCREEN_EIM_DELAY_MS",
    "ALLSCREEN_EIM_ACCEPT_TIMEOUT_S",
    "ALLSCREEN_EIM_MAX_REQUEST_BYTES",
)
EXIT_TIMEOUT_S = 10.0  #: a server gets this long to exit after its cue


def model_side(path: Path = ONNX_PATH, default: int = 96) -> int:
    """The square input side the model under test declares (ONNX metadata ``input_size``).

    This is what the server reports in ``hello``; ``default`` when the file is absent (the
    tests that need the model then skip).
    """
    if not path.is_file():
        return default
    import onnxruntime as ort

    from model.eim_protocol import ModelInfo

    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    info = ModelInfo.from_metadata(meta.get_modelmeta().custom_metadata_map)
    assert info.width == info.height, "the tests assume a square input"
    return info.width


@dataclass
class Started:
    """One SDK runner and the server process behind it."""

    runner: Any  # ImpulseRunner or ImageImpulseRunner (the SDK is untyped)
    proc: subprocess.Popen[bytes]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def socket_path(self) -> str:
        """The socket the SDK created the server with."""
        return os.path.join(self.runner._tempdir, "runner.sock")


def stop_runner(runner: Any, proc: subprocess.Popen[bytes]) -> int:
    """Stop ``runner`` the SDK way and reap its server; return the exit status.

    The SDK's ``stop()`` sends SIGINT to the runner's pid without checking that it still
    runs, so a server that already exited (and was reaped) is forgotten first.
    """
    if proc.poll() is not None:
        runner._runner = None
    runner.stop()
    try:
        return proc.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"server pid {proc.pid} ignored SIGINT for {EXIT_TIMEOUT_S} s")


@pytest.fixture
def onnx_model(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The model under test, exported to the servers; skip (fail on CI) when it is absent."""
    if not ONNX_PATH.is_file():
        reason = f"model file {ONNX_PATH} is absent (not trained or not committed yet)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    for var in SERVER_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALLSCREEN_EIM_ONNX", str(ONNX_PATH))
    return ONNX_PATH


@pytest.fixture
def start_runner(onnx_model: Path) -> Iterator[Callable[..., Started]]:
    """Factory: ``start_runner(image=True, allow_shm=True)`` inits an SDK runner.

    ``image=True`` gives the SDK's ``ImageImpulseRunner`` (shared memory, as workers use
    it); ``image=False`` a plain ``ImpulseRunner`` with ``allow_shm`` as given.
    """
    started: list[Started] = []

    def start(*, image: bool = True, allow_shm: bool = True) -> Started:
        path = str(EIM_PATH)
        runner = ImageImpulseRunner(path) if image else ImpulseRunner(path, allow_shm=allow_shm)
        info = runner.init()
        one = Started(runner, runner._runner, info)
        started.append(one)
        return one

    yield start
    for one in started:
        stop_runner(one.runner, one.proc)
