"""`allscreen worker --check` on real model files: one line per check, exit 0 or 1."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from allscreen.db import ensure_schema, make_engine
from allscreen.defaults import DEFAULT_MODEL
from allscreen.settings import Settings
from tests.support.cli import allscreen


@pytest.fixture
def check_settings(broker_url: str, sqlite_url: str) -> Settings:
    """Settings on a real Redis and a migrated SQLite database."""
    engine = make_engine(sqlite_url)
    ensure_schema(engine, create=True)
    engine.dispose()
    return Settings(broker_url=broker_url, database_url=sqlite_url)


def _check(settings: Settings, **env: str) -> subprocess.CompletedProcess[str]:
    return allscreen("worker", "--check", settings=settings, env=env)


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def _cc(*args: str) -> None:
    subprocess.run(["cc", *args], check=True)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_healthy_model_passes_every_check_and_shows_its_sha256_and_labels(
    check_settings: Settings,
) -> None:
    r = _check(check_settings)
    assert r.returncode == 0, r.stderr
    sha = hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()
    lines = r.stderr.splitlines()
    assert [line[:6] for line in lines] == ["ok    "] * 5, r.stderr
    assert f"sha256 {sha}" in lines[0] and "script, executable" in lines[0]
    assert "answered hello in" in lines[2] and "(limit 20 s)" in lines[2]
    assert "labels Benign, Early, Pre, Pro" in lines[2]
    assert "broker" in lines[3] and "database" in lines[4]


def test_a_model_that_is_not_executable_fails_the_check_with_exit_1(
    check_settings: Settings, tmp_path: Path
) -> None:
    model = _script(tmp_path / "model.eim", "exit 0")
    model.chmod(0o644)
    r = _check(check_settings, ALLSCREEN_MODEL=str(model))
    assert r.returncode == 1
    assert f"FAIL  model file is not executable: {model} (chmod +x it)" in r.stderr
    assert "skip  model start: the model file check failed" in r.stderr
    assert "ok    broker" in r.stderr and "ok    database" in r.stderr
    assert r.stderr.splitlines()[-1] == "allscreen: error: 1 of 5 device checks failed"
    assert "Traceback" not in r.stderr


def test_a_model_built_for_another_architecture_is_named_with_both_cpus(
    check_settings: Settings, tmp_path: Path
) -> None:
    model = tmp_path / "jetson.eim"
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"  # 64-bit, little-endian
    header[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    model.write_bytes(bytes(header))
    model.chmod(0o755)
    r = _check(check_settings, ALLSCREEN_MODEL=str(model))
    assert r.returncode == 1
    assert f"FAIL  model file {model} is built for aarch64, this machine is x86_64" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_model_that_hangs_before_its_socket_appears_fails_within_the_limit_and_is_killed(
    check_settings: Settings, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pid"
    model = _script(tmp_path / "hangs.eim", f"echo $$ > {pidfile}; exec sleep 60")
    t0 = time.monotonic()
    r = _check(check_settings, ALLSCREEN_MODEL=str(model), ALLSCREEN_MODEL_START_TIMEOUT="1")
    assert r.returncode == 1
    assert time.monotonic() - t0 < 30
    assert f"FAIL  model {model} did not open its socket within 1 s" in r.stderr
    assert _gone(int(pidfile.read_text()))


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler to build an ELF model")
def test_a_native_model_missing_jetpack_libraries_names_them_and_the_nvidia_runtime(
    check_settings: Settings, tmp_path: Path
) -> None:
    # A real x86-64 ELF that links against a `libnvinfer.so.8` this machine does not have.
    lib = tmp_path / "lib"
    lib.mkdir()
    (tmp_path / "trt.c").write_text("int trt_version(void) { return 8; }\n")
    (tmp_path / "main.c").write_text("int trt_version(void);\nint main(void) { return 0; }\n")
    so = lib / "libnvinfer.so.8"
    _cc("-shared", "-fPIC", "-Wl,-soname,libnvinfer.so.8", "-o", str(so), str(tmp_path / "trt.c"))
    model = tmp_path / "gpu.eim"
    _cc("-o", str(model), str(tmp_path / "main.c"), "-Wl,--no-as-needed", str(so))
    r = _check(check_settings, ALLSCREEN_MODEL=str(model))
    assert r.returncode == 1
    assert "native x86_64 binary" in r.stderr
    assert "FAIL  model " in r.stderr and "lacks: libnvinfer.so.8;" in r.stderr
    assert "NVIDIA runtime" in r.stderr
    assert "skip  model start: the model's libraries are missing" in r.stderr


def test_an_unreachable_broker_fails_the_check_and_still_checks_the_rest(
    check_settings: Settings,
) -> None:
    r = _check(check_settings, ALLSCREEN_BROKER_URL="redis://:secret@127.0.0.1:1/0")
    assert r.returncode == 1
    assert "FAIL  cannot reach the broker at redis://:***@127.0.0.1:1/0" in r.stderr
    assert r.stderr.count("ok    ") == 4
    assert "secret" not in r.stderr


def test_starting_a_worker_that_fails_a_check_exits_with_that_checks_code(
    check_settings: Settings, tmp_path: Path
) -> None:
    r = allscreen(
        "worker", settings=check_settings, env={"ALLSCREEN_MODEL": str(tmp_path / "none.eim")}
    )
    assert r.returncode == 6  # ModelError: systemd and compose see why it did not start
    assert "FAIL  model file not found" in r.stderr and "Traceback" not in r.stderr
