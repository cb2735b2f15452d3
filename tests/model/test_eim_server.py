"""The ``.eim`` model server, driven through the Edge Impulse Linux SDK as workers drive it.

The protocol-level tests at the end exercise the request framing and feature unpacking
directly; everything else starts ``model/allscreen-all.eim`` with ``edge_impulse_linux``.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from edge_impulse_linux.image import ImageImpulseRunner, get_features_from_image_with_studio_mode

from model.eim_framing import BadFrame, RequestScanner, encode_reply, error_reply
from model.eim_protocol import ModelInfo, unpack_rgb
from tests.model.conftest import (
    DATA_DIR,
    EIM_PATH,
    EXIT_TIMEOUT_S,
    Started,
    model_side,
    stop_runner,
)

pytestmark = pytest.mark.timeout(180)

LABELS = ["Benign", "Early", "Pre", "Pro"]
SIDE = model_side()  #: the model's input side, from its metadata (96 if it is absent)
N_FEATURES = SIDE * SIDE
TEST_IMAGES = 480  #: the test split of split v2 (near duplicates merged into groups)


def packed_features(seed: int = 0) -> list[int]:
    """A deterministic SIDE x SIDE image as the SDK's packed ``R<<16 | G<<8 | B`` features."""
    rgb = np.random.default_rng(seed).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    features, _ = get_features_from_image_with_studio_mode(rgb, "squash", SIDE, SIDE, False)
    return list(features)


def shm_path(info: dict[str, Any]) -> Path:
    """Where the server's ``features_shm`` segment lives."""
    return Path("/dev/shm") / str(info["features_shm"]["name"]).lstrip("/")


def pid_gone(pid: int, timeout: float = EXIT_TIMEOUT_S) -> bool:
    """Wait up to ``timeout`` for ``pid`` to exit (a zombie counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.02)
    return False


def wait_for(predicate: Callable[[], bool], timeout: float = EXIT_TIMEOUT_S) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def onnx_metadata(path: Path) -> dict[str, str]:
    """The model's ``metadata_props``."""
    meta: dict[str, str] = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    return meta


def test_hello_reports_the_four_labels_from_the_model_metadata(
    start_runner: Callable[..., Started], onnx_model: Path
) -> None:
    info = start_runner().info
    meta = onnx_metadata(onnx_model)
    params = info["model_parameters"]
    assert params["labels"] == json.loads(meta["labels"]) == LABELS
    assert params["label_count"] == 4
    assert (params["image_input_width"], params["image_input_height"]) == (SIDE, SIDE)
    assert params["image_channel_count"] == 3
    assert params["image_resize_mode"] == "squash"
    assert params["input_features_count"] == SIDE * SIDE
    assert params["model_type"] == "classification"
    assert params["sensor"] == 3
    assert info["project"]["name"] == meta["project_name"]
    assert info["project"]["deploy_version"] == int(float(meta["deploy_version"]))
    assert info["features_shm"]["type"] == "float32"
    assert info["features_shm"]["elements"] == SIDE * SIDE


def test_the_evaluation_resizes_to_the_size_the_server_reports(
    start_runner: Callable[..., Started], onnx_model: Path
) -> None:
    from model.evaluate import make_session, model_input_size

    params = start_runner().info["model_parameters"]
    served = (params["image_input_width"], params["image_input_height"])
    assert model_input_size(make_session(onnx_model)) == served == (SIDE, SIDE)


def test_classify_over_shared_memory_scores_every_label_summing_to_one(
    start_runner: Callable[..., Started],
) -> None:
    started = start_runner()
    assert started.runner._input_shm is not None  # the SDK took the shm path
    res = started.runner.classify(packed_features())
    scores = res["result"]["classification"]
    assert list(scores) == LABELS
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert {"dsp", "classification", "anomaly"} <= set(res["timing"])


def test_json_classify_gives_the_same_scores_as_shared_memory(
    start_runner: Callable[..., Started],
) -> None:
    via_shm = start_runner().runner
    via_json = start_runner(image=False, allow_shm=False).runner
    assert via_json._input_shm is None
    for seed in range(3):
        features = packed_features(seed)
        shm_scores = via_shm.classify(features)["result"]["classification"]
        json_scores = via_json.classify(features)["result"]["classification"]
        assert json_scores == pytest.approx(shm_scores, abs=1e-6)


@pytest.mark.parametrize(
    ("request_msg", "message"),
    [
        ({"classify": [1, 2, 3]}, f"expected {N_FEATURES} but got 3"),
        ({"classify": ["x"] * SIDE * SIDE}, "should contain all numbers"),
        ({"classify": [-1] * SIDE * SIDE}, "packed RGB pixels"),
        ({"classify_shm": {"elements": 7}}, f"expected {N_FEATURES}, but got 7"),
        ({"frobnicate": 1}, "unknown request"),
    ],
)
def test_a_bad_request_raises_the_server_message_and_the_next_request_works(
    start_runner: Callable[..., Started], request_msg: dict[str, Any], message: str
) -> None:
    runner = start_runner(image=False, allow_shm=False).runner
    with pytest.raises(Exception, match=message):
        runner.send_msg(request_msg)
    scores = runner.classify(packed_features())["result"]["classification"]
    assert list(scores) == LABELS


def test_non_json_bytes_get_an_error_reply_and_the_server_keeps_serving(
    start_runner: Callable[..., Started],
) -> None:
    runner = start_runner().runner
    runner._client.sendall(b"this is not json\n")  # the SDK's own connection
    reply = b""
    while not reply.endswith(b"\0"):
        chunk = runner._client.recv(1024)
        assert chunk, "server closed the connection"
        reply += chunk
    decoded = json.loads(reply[:-1])
    assert decoded["success"] is False
    assert "not a JSON object" in decoded["error"]
    assert list(runner.classify(packed_features())["result"]["classification"]) == LABELS


def test_an_oversize_request_is_refused_and_the_server_keeps_serving(
    start_runner: Callable[..., Started], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLSCREEN_EIM_MAX_REQUEST_BYTES", "4096")
    runner = start_runner(image=False, allow_shm=False).runner
    with pytest.raises(Exception, match="too large"):
        runner.classify(packed_features())  # ~10 bytes of JSON per pixel
    with pytest.raises(Exception, match=f"expected {N_FEATURES} but got 3"):
        runner.classify([1, 2, 3])  # still in step: the reply carries this request's id
    assert (
        "classification" in runner.send_msg({"classify_shm": {"elements": SIDE * SIDE}})["result"]
    )


def test_the_server_exits_when_the_sdk_closes_its_connection(
    start_runner: Callable[..., Started],
) -> None:
    started = start_runner()
    segment = shm_path(started.info)
    assert segment.exists()
    started.runner._client.close()
    assert started.proc.wait(timeout=EXIT_TIMEOUT_S) == 0
    assert not segment.exists()
    assert not os.path.exists(started.socket_path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_server_exits_cleanly_on_a_signal(
    start_runner: Callable[..., Started], signum: signal.Signals
) -> None:
    started = start_runner()
    segment = shm_path(started.info)
    os.kill(started.proc.pid, signum)
    assert started.proc.wait(timeout=EXIT_TIMEOUT_S) == 0
    assert not segment.exists()
    assert not os.path.exists(started.socket_path)


def test_sdk_stop_leaves_no_process_and_no_shared_memory_behind(
    start_runner: Callable[..., Started],
) -> None:
    started = start_runner()
    segment = shm_path(started.info)
    assert stop_runner(started.runner, started.proc) == 0
    assert pid_gone(started.proc.pid)
    assert not segment.exists()


def test_the_server_dies_with_its_parent(onnx_model: Path, tmp_path: Path) -> None:
    sock = tmp_path / "runner.sock"
    spawn = (
        "import subprocess, sys, time\n"
        "print(subprocess.Popen(sys.argv[1:]).pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", spawn, str(EIM_PATH), str(sock)], stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert wait_for(sock.exists), "server never created its socket"
    finally:
        parent.kill()
        parent.wait()
    assert pid_gone(pid), f"server pid {pid} outlived its parent"
    assert wait_for(lambda: not sock.exists())


def test_the_server_exits_when_nobody_connects_in_time(
    onnx_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLSCREEN_EIM_ACCEPT_TIMEOUT_S", "0.5")
    sock = tmp_path / "runner.sock"
    proc = subprocess.Popen([str(EIM_PATH), str(sock)], stderr=subprocess.DEVNULL)
    assert proc.wait(timeout=30) == 1
    assert not sock.exists()


def test_a_stale_file_at_the_socket_path_is_replaced(onnx_model: Path, tmp_path: Path) -> None:
    sock = tmp_path / "runner.sock"
    sock.write_text("left over by a crashed server")
    proc = subprocess.Popen([str(EIM_PATH), str(sock)], stderr=subprocess.DEVNULL)
    try:
        assert wait_for(sock.is_socket), "socket never appeared"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(sock))  # and hang up at once: the server must exit 0
        assert proc.wait(timeout=EXIT_TIMEOUT_S) == 0
    finally:
        proc.kill()
        proc.wait()
    assert not sock.exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ALLSCREEN_EIM_ONNX", "{tmp}/missing.onnx", "model failed to load"),
        ("ALLSCREEN_EIM_DELAY_MS", "thirteen", "bad configuration"),
    ],
)
def test_a_server_that_cannot_serve_makes_init_raise_instead_of_hanging(
    onnx_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv(variable, value.format(tmp=tmp_path))
    runner = ImageImpulseRunner(str(EIM_PATH))
    try:
        with pytest.raises(Exception, match=message):
            runner.init()
    finally:
        proc = runner._runner
        stop_runner(runner, proc)
    assert pid_gone(proc.pid)


def test_the_emulated_device_delay_is_added_to_every_inference(
    start_runner: Callable[..., Started], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLSCREEN_EIM_DELAY_MS", "40")
    runner = start_runner().runner
    t0 = time.perf_counter()
    res = runner.classify(packed_features())
    assert time.perf_counter() - t0 >= 0.040
    assert res["timing"]["classification"] >= 40


def test_the_served_model_classifies_the_test_split_accurately(
    start_runner: Callable[..., Started],
) -> None:
    if not (DATA_DIR / "split.csv").is_file():
        pytest.skip(f"ALL image data not found at {DATA_DIR} (it is not redistributed)")
    with (DATA_DIR / "split.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == "test"]
    assert len(rows) == TEST_IMAGES, "split.csv is not split v2"
    runner = start_runner().runner
    hits = {label: [0, 0] for label in LABELS}  # label -> [correct, total]
    wrong: list[str] = []
    for row in rows:
        bgr = cv2.imread(str(DATA_DIR / row["file"]), cv2.IMREAD_COLOR)
        assert bgr is not None, row["file"]
        features, _ = runner.get_features_from_image_auto_studio_settings(
            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        )
        scores = runner.classify(features)["result"]["classification"]
        predicted = max(scores, key=scores.__getitem__)
        hits[row["label"]][1] += 1
        if predicted == row["label"]:
            hits[row["label"]][0] += 1
        else:
            wrong.append(f"{row['file']} -> {predicted} ({scores[predicted]:.3f})")
    accuracy = sum(c for c, _ in hits.values()) / len(rows)
    recall = {label: c / n for label, (c, n) in hits.items()}
    assert accuracy >= 0.995, f"accuracy {accuracy:.4f}, recall {recall}, wrong: {wrong}"
    assert min(recall.values()) >= 0.99, f"recall {recall}, wrong: {wrong}"


# Protocol level: framing, replies and features, without a server.

STREAM_OBJECTS: list[dict[str, Any]] = [
    {"hello": 1, "id": 1},
    {"weird": 'br}ace{s "quoted" \\ and \\"', "nested": {"a": [1, {"b": 2}]}, "id": 2},
    {"classify": list(range(50)), "id": 3},
]


def test_requests_split_at_any_byte_are_reassembled_in_order() -> None:
    stream = b"".join(json.dumps(o).encode() for o in STREAM_OBJECTS) + b" \n"
    for cut in range(1, len(stream)):
        scanner = RequestScanner()
        frames = scanner.feed(stream[:cut]) + scanner.feed(stream[cut:])
        assert frames == STREAM_OBJECTS, f"cut at {cut}"
    scanner = RequestScanner()
    frames = [f for i in range(len(stream)) for f in scanner.feed(stream[i : i + 1])]
    assert frames == STREAM_OBJECTS


def test_junk_and_broken_json_become_error_frames_and_parsing_recovers() -> None:
    scanner = RequestScanner()
    frames = scanner.feed(b'garbage {"classify": [1,, 2], "id": 7} more junk {"hello": 1, "id": 8}')
    assert frames[0] == BadFrame("request is not a JSON object")
    assert isinstance(frames[1], BadFrame) and frames[1].request_id == 7
    assert "not valid JSON" in frames[1].error
    assert frames[2] == BadFrame("request is not a JSON object")
    assert frames[3] == {"hello": 1, "id": 8}


def test_an_oversize_request_is_dropped_as_it_streams_and_refused_with_its_id() -> None:
    scanner = RequestScanner(max_bytes=1000)
    big = json.dumps({"classify": list(range(5000)), "id": 41}).encode()
    frames = [f for i in range(0, len(big), 700) for f in scanner.feed(big[i : i + 700])]
    assert frames == [BadFrame("request too large: more than 1000 bytes, refused", 41)]
    assert scanner.feed(b'{"hello": 1, "id": 42}') == [{"hello": 1, "id": 42}]


def test_replies_end_in_newline_and_nul_and_carry_no_braces_inside_strings() -> None:
    wire = encode_reply(error_reply(5, "expected {elements} but got }{"))
    assert wire.endswith(b"\n\0")
    text = wire[:-2].decode()
    assert text.count("{") == text.count("}") == 1  # the SDK's reply parser counts braces
    assert json.loads(text) == {
        "id": 5,
        "success": False,
        "error": "expected (elements) but got )(",
    }


def test_unpacking_inverts_the_sdk_feature_packing() -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    features, _ = get_features_from_image_with_studio_mode(rgb, "squash", SIDE, SIDE, False)
    for dtype in (np.float32, np.float64):  # classify_shm and JSON classify
        pixels = unpack_rgb(np.asarray(features, dtype=dtype), SIDE, SIDE)
        assert pixels.dtype == np.float32 and pixels.shape == (1, SIDE, SIDE, 3)
        np.testing.assert_array_equal(pixels[0], rgb.astype(np.float32) / np.float32(255.0))


def test_model_info_comes_from_metadata_and_rejects_labels_the_sdk_cannot_parse() -> None:
    meta = {
        "labels": json.dumps(LABELS),
        "project_name": "p",
        "deploy_version": "3",
        "input_size": "96",
    }
    info = ModelInfo.from_metadata(meta)
    assert (info.labels, info.width, info.height, info.deploy_version) == (
        tuple(LABELS),
        96,
        96,
        3,
    )
    with pytest.raises(ValueError, match="braces"):
        ModelInfo.from_metadata({**meta, "labels": json.dumps(["a{", "b"])})
    with pytest.raises(ValueError, match="metadata"):
        ModelInfo.from_metadata({k: v for k, v in meta.items() if k != "labels"})
