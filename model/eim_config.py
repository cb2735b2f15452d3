"""Configuration of the ``.eim`` server: command-line options, else ``ALLSCREEN_EIM_*``.

The options are described in :mod:`model.eim_server`. A bad value does not stop the server:
it is served as the error of every reply (the SDK would otherwise wait forever).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.eim_framing import DEFAULT_MAX_REQUEST_BYTES

DEFAULT_ONNX = Path(__file__).resolve().parent / "all_cnn96.onnx"
DEFAULT_ACCEPT_TIMEOUT_S = 60.0  #: exit if the SDK has not connected by then


@dataclass(frozen=True)
class ServerConfig:
    """Everything the server needs to know, from arguments and environment."""

    socket_path: str
    onnx_path: Path = DEFAULT_ONNX
    delay_ms: float = 0.0
    latency_ms: float = 0.0
    accept_timeout_s: float = DEFAULT_ACCEPT_TIMEOUT_S
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    print_info: bool = False
    weights_sha256: str = ""  #: what the default weights must hash to ('' = unchecked)


_NUMERIC_OPTIONS = (  # (option, variable, type, default, smallest allowed)
    ("delay_ms", "ALLSCREEN_EIM_DELAY_MS", float, 0.0, 0.0),
    ("latency_ms", "ALLSCREEN_EIM_LATENCY_MS", float, 0.0, 0.0),
    ("accept_timeout_s", "ALLSCREEN_EIM_ACCEPT_TIMEOUT_S", float, DEFAULT_ACCEPT_TIMEOUT_S, 0.001),
    ("max_request_bytes", "ALLSCREEN_EIM_MAX_REQUEST_BYTES", int, DEFAULT_MAX_REQUEST_BYTES, 2),
)


def parse_config(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[ServerConfig, str]:
    """Build the configuration: command-line options win over ``ALLSCREEN_EIM_*`` variables.

    Returns the configuration and an error message ('' if none). A bad value does not stop
    the server (the SDK would wait forever for the socket): it is served as the reply to
    every request, so ``ImpulseRunner.init()`` raises it.
    """
    parser = argparse.ArgumentParser(
        prog="eim_server", description="Serve an ONNX image classifier over the .eim protocol."
    )
    parser.add_argument("socket_path", nargs="?", help="Unix socket to create and serve")
    parser.add_argument("--onnx", help="model file (ALLSCREEN_EIM_ONNX)")
    parser.add_argument("--delay-ms", help="ms added per inference (ALLSCREEN_EIM_DELAY_MS)")
    parser.add_argument(
        "--latency-ms", help="least ms per inference, compute included (ALLSCREEN_EIM_LATENCY_MS)"
    )
    parser.add_argument("--accept-timeout-s", help="(ALLSCREEN_EIM_ACCEPT_TIMEOUT_S)")
    parser.add_argument("--max-request-bytes", help="(ALLSCREEN_EIM_MAX_REQUEST_BYTES)")
    parser.add_argument("--print-info", action="store_true", help="print the hello reply")
    parser.add_argument("--weights-sha256", default="", help="pin of the default weights")
    args = parser.parse_args(argv)
    if args.socket_path is None and not args.print_info:
        parser.error("SOCKET_PATH is required")
    values: dict[str, Any] = {}
    errors: list[str] = []
    for name, variable, kind, default, least in _NUMERIC_OPTIONS:
        raw = getattr(args, name)
        raw = environ.get(variable, "") if raw is None else raw
        try:
            values[name] = kind(raw) if raw.strip() else default
            if not values[name] >= least or values[name] == float("inf"):  # also NaN
                raise ValueError
        except ValueError:
            values[name] = default
            errors.append(
                f"--{name.replace('_', '-')} / {variable} = {raw!r} is not a number >= {least}"
            )
    onnx = args.onnx or environ.get("ALLSCREEN_EIM_ONNX") or DEFAULT_ONNX
    config = ServerConfig(
        socket_path=args.socket_path or "",
        onnx_path=Path(onnx),
        print_info=args.print_info,
        weights_sha256=args.weights_sha256,
        **values,
    )
    return config, ("bad configuration: " + "; ".join(errors) if errors else "")
