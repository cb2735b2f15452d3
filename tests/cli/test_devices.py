"""`allscreen devices`: the workers online now, their model, and their last minute."""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from allscreen.defaults import DEFAULT_MODEL
from allscreen.presence import HEARTBEAT_SECONDS
from allscreen.settings import Settings
from producer.submit import submit, watch
from tests.support.cli import allscreen
from tests.support.workers import workers


def _reference_identity() -> tuple[str, str]:
    """Name and deploy version of the committed reference model, from its ONNX metadata."""
    import onnxruntime as ort

    from allscreen.defaults import REPO_ROOT

    meta = (
        ort.InferenceSession(
            str(REPO_ROOT / "model" / "all_cnn96.onnx"), providers=["CPUExecutionProvider"]
        )
        .get_modelmeta()
        .custom_metadata_map
    )
    return meta["project_name"], meta["deploy_version"]


def _devices(settings: Settings) -> list[dict[str, Any]]:
    r = allscreen("devices", "--json", settings=settings)
    assert r.returncode == 0, r.stderr
    data: list[dict[str, Any]] = json.loads(r.stdout)
    return data


def _one_device(settings: Settings) -> dict[str, Any]:
    """The single online device, waiting up to one heartbeat for its record to appear."""
    deadline = time.monotonic() + HEARTBEAT_SECONDS + 5
    while True:
        found = _devices(settings)
        if len(found) == 1 or time.monotonic() > deadline:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.5)


def test_devices_lists_each_online_worker_with_its_model_and_last_minute(
    fleet: Settings, archive: Path, tmp_path: Path
) -> None:
    sha = hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()
    with workers(fleet, tmp_path, "nano-1", concurrency=2):
        idle = _one_device(fleet)
        assert idle["device"] == "nano-1" and idle["node"].startswith("nano-1@")
        assert idle["model_sha256"] == sha and idle["model_file"] == str(DEFAULT_MODEL)
        assert (idle["model_name"], idle["model_version"]) == _reference_identity()
        assert idle["labels"] == ["Benign", "Early", "Pre", "Pro"]
        assert idle["concurrency"] == 2
        assert idle["images_last_minute"] == 0 and idle["p50_ms"] is None

        submit([archive], fleet, run_name="busy", err=io.StringIO())
        _, done, _ = watch("busy", fleet, err=io.StringIO())
        total = done.total

        busy = _one_device(fleet)
        assert busy["images_last_minute"] == total > 0
        assert busy["images_per_second"] == pytest.approx(total / 60)
        assert busy["p50_ms"] is not None and busy["p50_ms"] > 0
        table = allscreen("devices", settings=fleet).stdout
        assert "nano-1" in table and sha[:12] in table and "allscreen ALL reference" in table

    r = allscreen("devices", settings=fleet)
    assert r.returncode == 0
    assert r.stdout.startswith(f"no device is online on queue {fleet.queue}")


def test_devices_with_an_unreachable_broker_is_one_clear_line(fleet: Settings) -> None:
    r = allscreen("devices", settings=fleet, env={"ALLSCREEN_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert r.returncode == 3
    assert r.stderr.startswith("allscreen: error: cannot reach the broker at redis://127.0.0.1:1/0")
    assert "Traceback" not in r.stderr
