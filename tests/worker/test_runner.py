"""The guarded SDK runner: bounded start-up, classify timeouts, restarts, and no orphans."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from allscreen.errors import ModelCrashed, ModelError, ModelRefused
from worker.runner import GuardedImageRunner
from worker.session import ModelSession

REPO = Path(__file__).resolve().parents[2]
FAULTY = REPO / "tests" / "support" / "faulty.eim"
REFERENCE = REPO / "model" / "allscreen-all.eim"
MAGENTA = np.zeros((64, 64, 3), dtype=np.uint8)
MAGENTA[..., 0] = 255
MAGENTA[..., 2] = 255
GREY = np.full((64, 64, 3), 128, dtype=np.uint8)


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "model.eim"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def faulty_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ALLSCREEN_EIM_PYTHON", sys.executable)
    yield


def _session(path: Path, *, timeout: float = 5.0, attempts: int = 3) -> ModelSession:
    return ModelSession(
        path,
        factory=lambda: GuardedImageRunner(str(path), start_timeout=10, timeout=timeout),
        attempts=attempts,
    )


def test_a_model_that_exits_before_its_socket_is_reported_with_its_stderr(tmp_path: Path) -> None:
    runner = GuardedImageRunner(
        str(_script(tmp_path, "echo 'cannot load libfoo.so' >&2; exit 3")),
        start_timeout=10,
        timeout=1,
    )
    t0 = time.monotonic()
    with pytest.raises(ModelError, match=r"exited with code 3 .*cannot load libfoo.so"):
        runner.init()
    assert time.monotonic() - t0 < 5  # the SDK's own init() would loop forever here


def test_a_model_that_never_opens_its_socket_times_out_and_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    runner = GuardedImageRunner(
        str(_script(tmp_path, f"echo $$ > {pidfile}; exec sleep 60")), start_timeout=1, timeout=1
    )
    with pytest.raises(ModelError, match="did not open its socket within 1 s"):
        runner.init()
    assert _gone(int(pidfile.read_text()))


def test_a_model_file_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    path = _script(tmp_path, "exit 0")
    path.chmod(0o644)
    with pytest.raises(ModelError, match="not executable"):
        GuardedImageRunner(str(path), start_timeout=1, timeout=1).init()


def test_a_model_built_for_another_cpu_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "arm.eim"
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    header[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    path.write_bytes(bytes(header))
    path.chmod(0o755)
    with pytest.raises(ModelError, match="built for aarch64"):
        GuardedImageRunner(str(path), start_timeout=1, timeout=1).init()


def test_stop_reaps_the_model_process(tmp_path: Path) -> None:
    runner = GuardedImageRunner(str(REFERENCE), start_timeout=20, timeout=5)
    runner.init()
    pid = runner.pid
    assert pid is not None and not _gone(pid)
    runner.stop()
    assert _gone(pid)  # reaped, not a zombie (a zombie still answers kill(pid, 0))


def test_a_hung_model_is_killed_restarted_and_the_image_given_up_after_bounded_attempts(
    faulty_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLSCREEN_EIM_FAULT", "hang")
    session = _session(FAULTY, timeout=1.0, attempts=2)
    try:
        with pytest.raises(ModelCrashed, match=r"hung .*gave up after 2 attempts"):
            session.classify(session.features(MAGENTA))
        pred = session.classify(session.features(GREY))  # a fresh model serves the next image
        assert set(pred.scores) == {"Benign", "Early", "Pre", "Pro"}
    finally:
        session.close()


def test_a_model_that_dies_once_is_restarted_and_the_image_retried(
    faulty_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALLSCREEN_EIM_FAULT", f"crash-once:{tmp_path / 'crashed'}")
    session = _session(FAULTY)
    try:
        pred = session.classify(session.features(MAGENTA))
        assert pred.attempts == 2
        assert (tmp_path / "crashed").exists()
    finally:
        session.close()


def test_a_model_that_always_dies_on_an_image_fails_it_with_the_reason(
    faulty_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLSCREEN_EIM_FAULT", "crash")
    session = _session(FAULTY, attempts=3)
    try:
        with pytest.raises(ModelCrashed, match=r"died \(exit code 3\).*gave up after 3 attempts"):
            session.classify(session.features(MAGENTA))
    finally:
        session.close()


def test_an_error_reply_is_model_refused_with_its_reason_and_the_model_keeps_running(
    faulty_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLSCREEN_EIM_FAULT", "refuse")
    session = _session(FAULTY)
    try:
        pred = session.classify(session.features(GREY))
        runner = session._runner
        assert isinstance(runner, GuardedImageRunner)
        pid = runner.pid
        with pytest.raises(ModelRefused, match=r"input rejected: .all pixels saturated.$"):
            session.classify(session.features(MAGENTA))
        again = session.classify(session.features(GREY))
        assert session._runner is runner and runner.pid == pid  # not restarted
        assert again.scores == pred.scores and again.attempts == 1
    finally:
        session.close()


def test_a_reply_whose_error_holds_braces_is_read_whole(tmp_path: Path) -> None:
    # The reference runner never puts braces in an error, but another .eim may: the SDK's
    # brace-counting parser would stop inside the string. A peer on a socket pair sends one.
    runner = GuardedImageRunner(str(REFERENCE), start_timeout=1, timeout=1)
    ours, model_end = socket.socketpair()
    runner._client = ours
    try:
        reply = b'{"id": 1, "success": false, "error": "bad input {x} at }{"}\n\x00'
        model_end.sendall(reply)
        with pytest.raises(ModelRefused, match=r"^bad input \{x\} at \}\{$"):
            runner.send_msg({"classify": [1]})
        assert json.loads(model_end.recv(1024)) == {"classify": [1], "id": 1}
        model_end.shutdown(socket.SHUT_WR)  # the model hangs up before it answers
        with pytest.raises(ConnectionResetError, match="closed its socket"):
            runner.send_msg({"classify": [1]})
        model_end.close()
    finally:
        ours.close()
