"""Serve an ONNX image classifier over the Edge Impulse ``.eim`` runner protocol.

Started as ``eim_server.py SOCKET_PATH`` (normally through the ``allscreen-all.eim``
launcher, by ``edge_impulse_linux``'s ``ImpulseRunner``), it loads the model, creates the
Unix socket, accepts exactly one connection and answers ``hello``, ``classify`` and
``classify_shm`` with the same JSON the C++ runner of a Studio export produces, so the SDK
cannot tell the two apart. It exits when the peer disconnects, on SIGINT, SIGTERM or
SIGHUP, when its parent dies, or when nobody connects in time, and removes its socket and
shared memory. A bad configuration or model is served as the error of every reply (the
SDK would wait forever for a socket that never appears).

Options (command line, else environment): ``--onnx`` / ``ALLSCREEN_EIM_ONNX`` (default
``all_cnn96.onnx`` next to this file), ``--delay-ms`` / ``ALLSCREEN_EIM_DELAY_MS`` (sleep
added to every inference, to emulate a slower device), ``--latency-ms`` /
``ALLSCREEN_EIM_LATENCY_MS`` (every inference takes at least this long, the network's own time
included: a device whose model takes that long), ``--accept-timeout-s`` /
``ALLSCREEN_EIM_ACCEPT_TIMEOUT_S`` and ``--max-request-bytes`` /
``ALLSCREEN_EIM_MAX_REQUEST_BYTES``. ``--print-info`` prints the ``hello`` reply and exits.
``--weights-sha256`` (given by the launcher, see ``model/pin.py``) is the sha256 the default
weights must have; weights named by ``--onnx`` or ``ALLSCREEN_EIM_ONNX`` are not checked.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

import numpy as np
import numpy.typing as npt

if __name__ == "__main__":  # run as a script by the launcher: make `model.*` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))

from model.eim_classifier import OnnxClassifier, load_classifier
from model.eim_config import ServerConfig, parse_config
from model.eim_framing import BadFrame, Frame, RequestScanner, encode_reply, error_reply
from model.eim_protocol import (
    ModelInfo,
    RequestError,
    features_from_json,
    hello_reply,
    request_id,
    shm_elements,
    unpack_rgb,
)
from model.eim_shm import FeatureShm

__all__ = ["OnnxClassifier", "ServerConfig", "main", "parse_config", "serve"]

RECV_BYTES = 1 << 20  #: one recv() reads a whole JSON classify of a 96x96 image
PR_SET_PDEATHSIG = 1  #: from <linux/prctl.h>
VERBS = ("hello", "classify", "classify_shm")


class EimSession:
    """Protocol state of the one connection: answers decoded requests one at a time."""

    def __init__(self, classifier: OnnxClassifier | None, load_error: str = "") -> None:
        """Serve ``classifier``; with None, answer every request with ``load_error``."""
        self._classifier = classifier
        self._load_error = load_error
        self._shm: FeatureShm | None = None
        self._initialized = False

    def close(self) -> None:
        """Unlink the shared memory segment, if one was created."""
        if self._shm is not None:
            self._shm.close()
            self._shm = None

    def handle(self, frame: Frame, timing: Mapping[str, int]) -> dict[str, Any]:
        """Return the reply to one frame; ``timing`` adds the stream-side timings."""
        if isinstance(frame, BadFrame):
            return error_reply(frame.request_id, frame.error)
        rid = request_id(frame)
        if rid is None:
            return error_reply(frame.get("id"), "Missing 'id' field in message")
        if self._classifier is None:
            return error_reply(rid, self._load_error)
        try:
            return self._dispatch(rid, frame, self._classifier, timing)
        except RequestError as exc:
            return error_reply(rid, str(exc))

    def _dispatch(
        self, rid: int, req: dict[str, Any], model: OnnxClassifier, timing: Mapping[str, int]
    ) -> dict[str, Any]:
        """Route a request by its verb, in the C++ runner's order of precedence."""
        n = model.info.width * model.info.height
        features: npt.NDArray[np.floating[Any]]
        if "hello" in req:
            return self._hello(rid, req["hello"], model.info)
        if not self._initialized:
            raise RequestError("Invalid message, should initialize first")
        if "classify" in req:
            features = features_from_json(req["classify"], n)
        elif "classify_shm" in req and self._shm is not None:
            shm_elements(req["classify_shm"], n)
            features = self._shm.array
        elif "classify_shm" in req:
            raise RequestError("Cannot use 'classify_shm': no shared memory segment")
        else:
            keys = ", ".join(sorted(k[:40] for k in req if k not in ("id", "debug"))[:5])
            raise RequestError(
                f"Failed to handle message: unknown request ({keys or 'no verb'})"
                f"; this runner answers {', '.join(VERBS)}"
            )
        pixels = unpack_rgb(features, model.info.height, model.info.width)
        scores, ms = model.classify(pixels)
        return {
            "id": rid,
            "success": True,
            "result": {"classification": dict(zip(model.info.labels, scores, strict=True))},
            "timing": {"dsp": 0, "classification": round(ms), "anomaly": 0, **timing},
        }

    def _hello(self, rid: int, version: Any, info: ModelInfo) -> dict[str, Any]:
        """Answer ``hello``: create the shared memory segment and describe the model."""
        if self._initialized:
            raise RequestError("Invalid message 'hello', already initialized")
        if type(version) is not int or version != 1:
            raise RequestError("Invalid value for 'hello', only 1 supported")
        shm_error = ""
        try:
            name = f"allscreen-eim-{os.getpid()}-{os.urandom(4).hex()}"
            self._shm = FeatureShm(info.width * info.height, name)
        except OSError as exc:  # e.g. /dev/shm missing or full: the SDK falls back to JSON
            shm_error = f"shm_open failed ({exc})"
        self._initialized = True
        return hello_reply(rid, info, self._shm, shm_error)


class Stopper:
    """Turns SIGINT, SIGTERM and SIGHUP into a flag plus a wake-up of :meth:`wait`.

    The handlers raise nothing: an exception thrown into inference or into cleanup could
    leave the shared memory segment behind. Instead ``signal.set_wakeup_fd`` makes every
    signal readable on a pipe that each blocking wait selects on, with the socket.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        """Install the handlers (main thread only)."""
        self.reason = ""
        self._wake_r, wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for signum in self.SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Record the first signal; the wake-up byte has already been written."""
        self.reason = self.reason or signal.Signals(signum).name

    def wait(self, sock: socket.socket, timeout: float | None = None) -> bool:
        """Block until ``sock`` is readable (True), or a signal or ``timeout`` (False)."""
        if self.reason:
            return False
        readable, _, _ = select.select([sock.fileno(), self._wake_r], [], [], timeout)
        if self._wake_r in readable:  # the Python-level handler may not have run yet
            signum = os.read(self._wake_r, 1)[0]
            self.reason = self.reason or signal.Signals(signum).name
        return not self.reason and sock.fileno() in readable


def serve_connection(
    conn: socket.socket, session: EimSession, max_request_bytes: int, stopper: Stopper
) -> None:
    """Answer requests on ``conn`` until the peer closes it or a signal arrives."""
    scanner = RequestScanner(max_request_bytes)
    t_first = 0.0
    while stopper.wait(conn):
        try:
            data = conn.recv(RECV_BYTES)
        except ConnectionError:
            return
        if not data:
            return
        t_recv = time.perf_counter()
        if not scanner.pending:
            t_first = t_recv
        frames = scanner.feed(data)
        t_parsed = time.perf_counter()
        for frame in frames:
            t_handler = time.perf_counter()
            timing = {
                "json": round((t_parsed - t_recv) * 1000),
                "stdin": round((t_recv - t_first) * 1000),
            }
            reply = session.handle(frame, timing)
            if reply.get("success") and "timing" in reply:
                reply["timing"]["msg_handler"] = round((time.perf_counter() - t_handler) * 1000)
            try:
                conn.sendall(encode_reply(reply))
            except ConnectionError:
                return
            t_first = t_parsed


def die_with_parent(parent_pid: int) -> bool:
    """Ask Linux to SIGTERM us when the parent dies; False if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        _log(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}")
    return os.getppid() == parent_pid


def _log(message: str) -> None:
    """One line on stderr (the SDK discards it unless started with debug=True)."""
    print(f"eim_server[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _unlink(path: str) -> None:
    """Remove ``path`` if it exists (the SDK may already have deleted its temp dir)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def serve(config: ServerConfig, stopper: Stopper, config_error: str = "") -> int:
    """Load the model, serve one connection, clean up; return the exit status.

    0 after the peer disconnects or on a signal; 1 if the configuration or the model was
    bad (after serving that error) or if nobody connected within the accept timeout.
    """
    classifier, load_error = None, config_error
    if not config_error:  # load before the socket exists: the SDK connects at once
        classifier, load_error = load_classifier(config)
    if load_error:
        _log(f"serving the error: {load_error}")
    if stopper.reason:
        return 0
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # (no longer than "runner.sock", so it fits AF_UNIX's 108 bytes wherever the final does)
    staging = os.path.join(os.path.dirname(config.socket_path), f".eim{os.getpid()}")
    session = EimSession(classifier, load_error)
    try:
        _unlink(config.socket_path)  # stale files of a crashed server
        _unlink(staging)
        # The SDK connects the moment the path exists, so it must not exist between bind()
        # and listen(): bind under a private name and rename() it into place (atomic).
        listener.bind(staging)
        listener.listen(1)
        os.rename(staging, config.socket_path)
        if not stopper.wait(listener, config.accept_timeout_s):
            if stopper.reason:
                return 0
            _log(f"nobody connected within {config.accept_timeout_s:g} s, exiting")
            return 1
        conn, _ = listener.accept()
        listener.close()  # exactly one client; later connects are refused
        with conn:
            serve_connection(conn, session, config.max_request_bytes, stopper)
    finally:
        session.close()
        listener.close()
        _unlink(staging)
        _unlink(config.socket_path)
    return 1 if load_error and not stopper.reason else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse options, arm signals and parent-death, then serve."""
    parent = os.getppid()
    stopper = Stopper()
    config, config_error = parse_config(sys.argv[1:] if argv is None else argv, os.environ)
    if config.print_info:
        classifier, load_error = load_classifier(config)
        if classifier is None or config_error:
            _log(config_error or load_error)
            return 1
        print(json.dumps(hello_reply(1, classifier.info, None), indent=4))
        return 0
    if not die_with_parent(parent):
        _log("parent exited during startup")
        return 0
    status = serve(config, stopper, config_error)
    if stopper.reason:
        _log(f"stopped by {stopper.reason}")
    return status


if __name__ == "__main__":
    sys.exit(main())
