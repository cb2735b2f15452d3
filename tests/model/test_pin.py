"""The launcher pins its weights, so the reference model's identity changes with them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from edge_impulse_linux.image import ImageImpulseRunner

from model import pin
from tests.model.conftest import SERVER_ENV, stop_runner

SERVED = (  # what the launcher runs: the server modules, the pin and the launcher
    "__init__.py",
    "eim_classifier.py",
    "eim_config.py",
    "eim_framing.py",
    "eim_protocol.py",
    "eim_server.py",
    "eim_shm.py",
    "pin.py",
    "allscreen-all.eim",
)


def test_the_committed_launcher_pins_the_committed_weights() -> None:
    assert pin.pinned_sha256() == pin.sha256_of(pin.WEIGHTS)


@pytest.fixture
def model_copy(tmp_path: Path, onnx_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of ``model/`` (launcher, server, weights) that serves its own default weights."""
    for var in SERVER_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ALLSCREEN_EIM_PYTHON", sys.executable)
    here = tmp_path / "model"
    here.mkdir()
    for name in SERVED:
        shutil.copy2(pin.HERE / name, here / name)
    shutil.copy2(onnx_model, here / pin.WEIGHTS.name)
    return here


def init_error(launcher: Path) -> str:
    """What ``ImageImpulseRunner(launcher).init()`` raises ('' when it succeeds)."""
    runner = ImageImpulseRunner(str(launcher))
    try:
        info = runner.init()
        assert info["model_parameters"]["label_count"] == 4
        return ""
    except Exception as exc:  # the SDK raises a bare Exception with the server's message
        return str(exc)
    finally:
        stop_runner(runner, runner._runner)


def test_weights_that_differ_from_the_pin_are_refused_until_repinned(model_copy: Path) -> None:
    launcher = model_copy / "allscreen-all.eim"
    text = launcher.read_text()
    launcher.write_text(text.replace(pin.pinned_sha256(launcher), "0" * 64))
    before = pin.sha256_of(launcher)

    assert "are not the ones the launcher pins (000000000000)" in init_error(launcher)

    digest = pin.pin(launcher, model_copy / pin.WEIGHTS.name)
    assert digest == pin.sha256_of(model_copy / pin.WEIGHTS.name)
    assert pin.sha256_of(launcher) != before  # the identity a worker reports changed
    assert init_error(launcher) == ""


def test_a_launcher_without_exactly_one_pin_is_an_error(tmp_path: Path) -> None:
    launcher = tmp_path / "allscreen-all.eim"
    launcher.write_text("#!/bin/sh\nexec true\n")
    with pytest.raises(ValueError, match="pins 0 weights sha256 values"):
        pin.pinned_sha256(launcher)
