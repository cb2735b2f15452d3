"""The SDK's ImageImpulseRunner, guarded against the traps of edge_impulse_linux 1.2.2.

The real SDK still speaks to the real model subprocess; this subclass only replaces the parts
that can hang or leak:

- `init()` loops forever if the model exits before creating its socket: start-up here watches
  the process and a deadline, and reports the model's own stderr.
- `classify()` has no socket timeout when shared memory is in use: a timeout is always set.
- `send_msg()` writes requests with `send()`, which can stall on large JSON, and reads replies
  1 KiB at a time into a growing `bytes`, parsed by counting braces one character at a time in
  Python (which also misreads a brace inside an error string): here requests go out with
  `sendall()` and replies are read in large chunks and handed to the JSON decoder whole.
- `stop()` sends SIGINT and never reaps the child: it is reaped here, with SIGKILL as a last
  resort, and a shared-memory segment left by a killed model is unlinked.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np

from allscreen.errors import ModelCrashed, ModelError, ModelRefused
from allscreen.process import die_with_parent
from worker.modelfile import check_model_file
from worker.sdk import load_sdk_image_module

ImageImpulseRunner = load_sdk_image_module().ImageImpulseRunner

_RECV_BYTES = 1 << 16  #: a reply is a few hundred bytes; large ones take few reads
_EXIT_GRACE_SECONDS = 0.5  #: how long a model whose socket closed gets to finish exiting
_STOP_GRACE_SECONDS = 2.0  #: how long a model gets to exit after SIGINT before SIGKILL
#: One decoder for every reply, built once rather than per call.
_DECODER = json.JSONDecoder()


class GuardedImageRunner(ImageImpulseRunner):  # type: ignore[misc,valid-type]
    """ImageImpulseRunner with bounded start-up, a classify timeout and a reaping stop."""

    _client: socket.socket | None
    _runner: subprocess.Popen[bytes] | None

    def __init__(self, model_path: str, *, start_timeout: float, timeout: float) -> None:
        super().__init__(model_path)
        self._start_timeout = start_timeout
        self._classify_timeout = timeout
        self._stderr_path: Path | None = None

    @property
    def pid(self) -> int | None:
        """The model process id while it runs."""
        proc = self._runner
        return None if proc is None else int(proc.pid)

    def stderr_tail(self, limit: int = 300) -> str:
        """The last characters the model wrote to stderr, for error messages."""
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        text = self._stderr_path.read_bytes()[-limit:].decode("utf-8", "replace").strip()
        return " ".join(text.split())

    def init(self, debug: bool = False) -> dict[str, Any]:
        """Start the model, wait for its socket within the deadline, and say hello."""
        path = Path(self._model_path)
        check_model_file(path)
        self._debug = debug
        self._tempdir = tempfile.mkdtemp(prefix="allscreen-eim-")
        sock_path = os.path.join(self._tempdir, "runner.sock")
        self._stderr_path = Path(self._tempdir) / "stderr.log"
        with self._stderr_path.open("wb") as err:
            try:
                self._runner = subprocess.Popen(
                    [str(path), sock_path],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    # The reference model's launcher runs on this interpreter when installed
                    # outside a checkout (a Studio .eim ignores the variable).
                    env={"ALLSCREEN_EIM_PYTHON": sys.executable, **os.environ},
                    preexec_fn=die_with_parent(signal.SIGKILL),
                )
            except OSError as exc:
                self.stop()
                raise ModelError(f"cannot start model {path}: {exc.strerror or exc}") from exc
        deadline = time.monotonic() + self._start_timeout
        while not os.path.exists(sock_path):
            code = self._runner.poll()
            if code is not None:
                tail = self.stderr_tail()
                self.stop()
                raise ModelError(
                    f"model {path} exited with code {code} before opening its socket"
                    + (f": {tail}" if tail else "")
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ModelError(
                    f"model {path} did not open its socket within {self._start_timeout:g} s"
                )
            time.sleep(0.005)
        return self._connect_and_hello(sock_path, deadline)

    def _connect_and_hello(self, sock_path: str, deadline: float) -> dict[str, Any]:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            client.connect(sock_path)
            self._client = client
            hello: dict[str, Any] = self.hello()
        except (OSError, IndexError, ValueError) as exc:
            client.close()
            self._client = None
            tail = self.stderr_tail()
            self.stop()
            raise ModelError(
                f"model {self._model_path} did not answer hello: {exc!r}"
                + (f" ({tail})" if tail else "")
            ) from exc
        except Exception as exc:  # ModelRefused, or a bare Exception from the SDK
            self.stop()
            raise ModelError(f"model {self._model_path} refused hello: {exc}") from exc
        client.settimeout(self._classify_timeout)
        self._hello_resp = hello
        shm_info = hello.get("features_shm")
        if self._allow_shm and isinstance(shm_info, dict):
            shm = shared_memory.SharedMemory(name=str(shm_info["name"]).lstrip("/"))
            elements = int(shm_info["elements"])
            self._input_shm = {
                "shm": shm,
                "type": shm_info["type"],
                "elements": elements,
                "array": np.ndarray((elements,), dtype=np.float32, buffer=shm.buf),
            }
        params = hello["model_parameters"]
        width, height = params["image_input_width"], params["image_input_height"]
        if not width or not height:
            self.stop()
            raise ModelError(f"model {self._model_path} is not an image model")
        self.dim = (width, height)
        self.labels = params["labels"]
        self.isGrayscale = params["image_channel_count"] == 1
        self.resizeMode = params.get("image_resize_mode", "not-reported")
        return hello

    def send_msg(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return its reply, as the SDK's `send_msg` does (same id and
        `success` checks), reading and decoding the reply in whole chunks. An error reply
        raises ModelRefused, where the SDK raises a bare Exception."""
        client = self._client
        if client is None:
            raise Exception("ImpulseRunner is not initialized (call init())")
        self._ix += 1
        msg["id"] = self._ix
        client.sendall(json.dumps(msg).encode("utf-8"))
        buf = bytearray()
        while not buf or buf[-1] != 0:  # a reply ends with a NUL byte
            chunk = client.recv(_RECV_BYTES)
            if not chunk:
                raise ConnectionResetError("the model closed its socket")
            buf += chunk
        text = buf[:-1].decode("utf-8")
        start = text.find("{")
        if start < 0:
            raise ValueError("No data or corrupted data received")
        resp, _ = _DECODER.raw_decode(text, start)
        if not isinstance(resp, dict):
            raise ValueError("No data or corrupted data received")
        if resp.get("id") != self._ix:
            raise ValueError(f"Wrong id, expected: {self._ix} but got {resp.get('id')}")
        if not resp.get("success"):
            raise ModelRefused(str(resp.get("error", "no reason given")))
        del resp["id"], resp["success"]
        return resp

    @property
    def uses_shm(self) -> bool:
        """Whether features travel through shared memory."""
        return self._input_shm is not None

    def classify_features(self, features: np.ndarray[Any, Any]) -> dict[str, Any]:
        """Classify one feature vector; raise ModelCrashed when the model dies or hangs."""
        data: Any = features if self.uses_shm else features.astype(np.int64).tolist()
        try:
            reply: dict[str, Any] = self.classify(data)
        except TimeoutError as exc:
            raise ModelCrashed(f"model hung (no answer in {self._classify_timeout:g} s)") from exc
        except (OSError, IndexError, ValueError) as exc:
            code = self._exit_code()
            tail = self.stderr_tail()
            raise ModelCrashed(
                f"model process died (exit code {code})" + (f": {tail}" if tail else "")
                if code is not None
                else f"model connection failed: {exc!r}"
            ) from exc
        return reply

    def _exit_code(self) -> int | None:
        # The socket closes while the process is still exiting: give it a moment to finish.
        if self._runner is None:
            return None
        try:
            return self._runner.wait(_EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """Stop the model and reap it; safe to call twice."""
        proc: subprocess.Popen[bytes] | None = self._runner
        shm_name = None if self._input_shm is None else self._input_shm["shm"].name
        self._runner = None  # the SDK's stop() would only SIGINT it
        self._stderr_path = None
        super().stop()
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(_STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if shm_name is not None:
            _unlink_shm(shm_name)


def _unlink_shm(name: str) -> None:
    """Remove a segment a killed model could not remove itself."""
    try:
        seg = shared_memory.SharedMemory(name=name)
    except (FileNotFoundError, OSError):
        return
    seg.close()
    with contextlib.suppress(FileNotFoundError):
        seg.unlink()  # also unregisters it from the resource tracker
