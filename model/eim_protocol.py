"""Wire format of the Edge Impulse Linux ``.eim`` runner protocol (socket side).

An ``.eim`` model is an executable started as ``MODEL SOCKET_PATH``. A client (the
``edge_impulse_linux`` SDK) connects once and sends raw JSON objects with no delimiter
between them, each carrying an integer ``"id"``. Every reply is one JSON object followed by
``"\\n"`` and a NUL byte. This module holds the parts of that protocol that do not depend on
the inference engine: incremental framing of the request stream, the replies, the model
description read from ONNX metadata, the shared memory segment of ``classify_shm``,
validation of request arguments and unpacking of packed-RGB features. It is stdlib + numpy
only, so it can be tested without onnxruntime.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""Largest request accepted, in bytes. A JSON ``classify`` of a 96x96 image is ~90 kB, and
the real runner's whole buffer is 32 MiB; anything near this cap is a broken client."""

REPLY_TERMINATOR = b"\n\x00"
"""Bytes after each reply: the SDK reads until a chunk ends in NUL."""

MAX_PACKED_PIXEL = 0xFFFFFF
"""Largest packed pixel value ``R << 16 | G << 8 | B``."""

SENSOR_CAMERA = 3  #: EI_CLASSIFIER_SENSOR_CAMERA
ENGINE_NONE = 255  #: EI_CLASSIFIER_NONE: onnxruntime is not one of Edge Impulse's engines

_NOT_WHITESPACE = re.compile(rb"[^ \t\r\n]")
_IN_OBJECT = re.compile(rb'[{}"]')
_IN_STRING = re.compile(rb'["\\]')
_TRAILING_ID = re.compile(rb'"id"\s*:\s*(-?\d+)\s*}\s*$')
_TAIL_KEEP = 64  # bytes kept of a discarded request, enough to find its trailing "id"


class RequestError(Exception):
    """Raised when a request is well-formed JSON but its arguments are invalid."""


@dataclass(frozen=True)
class BadFrame:
    """A stretch of the request stream that is not a usable JSON object."""

    error: str
    request_id: int | None = None


Frame = dict[str, Any] | BadFrame
"""One item of the request stream: a decoded JSON object, or why there is none."""


def sanitize(message: str) -> str:
    """Return ``message`` without curly braces.

    The SDK finds the end of a reply by counting ``{`` and ``}`` without regard to JSON
    strings, so a brace inside any string of a reply would corrupt its parse.
    """
    return message.replace("{", "(").replace("}", ")")


def encode_reply(reply: dict[str, Any]) -> bytes:
    """Serialise one reply: compact JSON, then ``"\\n"`` and NUL.

    Raises:
        ValueError: if the reply holds a non-finite float (not valid JSON).
    """
    text = json.dumps(reply, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8") + REPLY_TERMINATOR


def error_reply(request_id: Any, message: str) -> dict[str, Any]:
    """Build a failure reply; the SDK raises ``Exception(message)`` from it."""
    return {"id": request_id, "success": False, "error": sanitize(message)}


class RequestScanner:
    """Incremental splitter of a byte stream into concatenated JSON objects.

    Bytes are fed as they arrive from ``recv()``; an object may span any number of
    chunks and a chunk may hold several objects. Object boundaries are found by brace
    depth outside JSON strings (regex-accelerated, so a 90 kB ``classify`` costs little),
    and each complete object is decoded with :meth:`json.JSONDecoder.raw_decode`.
    Non-JSON bytes between objects yield one :class:`BadFrame` per run; an object larger
    than ``max_bytes`` is discarded as it streams in (memory stays bounded) and yields a
    :class:`BadFrame` carrying its trailing ``"id"`` when that can be found.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        """Create an empty scanner refusing objects longer than ``max_bytes``."""
        if max_bytes < 2:
            raise ValueError("max_bytes must be at least 2")
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._pos = 0  # next byte to scan
        self._start = 0  # first byte of the current object (valid while depth > 0)
        self._depth = 0
        self._in_string = False
        self._in_junk = False
        self._oversize = False
        self._decoder = json.JSONDecoder()

    @property
    def pending(self) -> bool:
        """Whether an object has started but not finished."""
        return self._depth > 0

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return the frames they complete, in stream order."""
        self._buf += data
        frames: list[Frame] = []
        while True:
            if self._depth == 0 and not self._open_object(frames):
                break
            end = self._scan_object()
            if end is None:
                break
            frames.append(self._finish_object(end))
        self._compact()
        return frames

    def _open_object(self, frames: list[Frame]) -> bool:
        """Skip to the next ``{``; report a junk run once. False if the buffer ran out."""
        buf = self._buf
        m = _NOT_WHITESPACE.search(buf, self._pos)
        if m is None:
            self._pos = len(buf)
            return False
        at = m.start()
        if buf[at] != ord("{"):
            if not self._in_junk:
                frames.append(BadFrame("request is not a JSON object"))
                self._in_junk = True
            brace = buf.find(b"{", at)
            if brace < 0:
                self._pos = len(buf)
                return False
            at = brace
        self._in_junk = False
        self._start, self._pos, self._depth = at, at + 1, 1
        self._in_string = self._oversize = False
        return True

    def _scan_object(self) -> int | None:
        """Advance through the open object; return the index after its ``}`` or None."""
        buf, pos = self._buf, self._pos
        while True:
            if self._in_string:
                m = _IN_STRING.search(buf, pos)
                if m is None:
                    pos = max(pos, len(buf))  # pos may sit past a trailing backslash
                    break
                if buf[m.start()] == ord("\\"):
                    pos = m.start() + 2  # may step past the end: resumes there later
                    continue
                self._in_string = False
                pos = m.end()
                continue
            m = _IN_OBJECT.search(buf, pos)
            if m is None:
                pos = len(buf)
                break
            pos = m.end()
            char = buf[m.start()]
            if char == ord('"'):
                self._in_string = True
            elif char == ord("{"):
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    self._pos = pos
                    return pos
        self._pos = pos
        if pos - self._start > self.max_bytes:
            self._oversize = True
        return None

    def _finish_object(self, end: int) -> Frame:
        """Decode the complete object ``buf[start:end]`` into a frame."""
        raw = bytes(self._buf[self._start : end])
        if self._oversize or end - self._start > self.max_bytes:
            self._oversize = False
            return BadFrame(
                f"request too large: more than {self.max_bytes} bytes, refused", _trailing_id(raw)
            )
        try:
            obj, _ = self._decoder.raw_decode(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return BadFrame("request is not valid UTF-8", _trailing_id(raw))
        except json.JSONDecodeError as exc:
            return BadFrame(
                f"request is not valid JSON: {exc.msg} at char {exc.pos}", _trailing_id(raw)
            )
        return obj if isinstance(obj, dict) else BadFrame("request is not a JSON object")

    def _compact(self) -> None:
        """Drop consumed bytes; of an oversize object keep only a short tail."""
        if self._depth > 0:
            keep = self._start
            if self._oversize:
                keep = max(keep, self._pos - _TAIL_KEEP)
        else:
            keep = self._pos
        if keep > 0:
            del self._buf[:keep]
            self._pos -= keep
            self._start = max(self._start - keep, 0)


def _trailing_id(raw: bytes) -> int | None:
    """Best-effort request id of an undecodable object (the SDK puts ``id`` last)."""
    m = _TRAILING_ID.search(raw[-_TAIL_KEEP:])
    return int(m.group(1)) if m else None


def request_id(request: dict[str, Any]) -> int | None:
    """Return the request's integer ``id``, or None when missing or not an integer."""
    value = request.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def features_from_json(value: Any, expected: int) -> npt.NDArray[np.float64]:
    """Validate a ``classify`` argument: a list of exactly ``expected`` numbers.

    Raises:
        RequestError: on a non-list, a non-number element, or a wrong length.
    """
    if not isinstance(value, list):
        raise RequestError("'classify' must be a list of numbers")
    if len(value) != expected:
        raise RequestError(
            f"Invalid number of features in 'classify', expected {expected} but got {len(value)}"
        )
    if not set(map(type, value)) <= {int, float}:  # bool, str, None... are not numbers
        raise RequestError("Failed to parse classify array, should contain all numbers")
    return np.asarray(value, dtype=np.float64)


def shm_elements(value: Any, expected: int) -> int:
    """Validate a ``classify_shm`` argument ``{"elements": N}`` against the segment size.

    Raises:
        RequestError: if ``elements`` is missing, not an integer, or not ``expected``.
    """
    if not isinstance(value, dict) or "elements" not in value:
        raise RequestError("Missing 'elements' in 'classify_shm'")
    elements = value["elements"]
    if isinstance(elements, bool) or not isinstance(elements, int) or elements != expected:
        raise RequestError(
            f"Invalid value for 'classify_shm.elements', expected {expected}, but got {elements!r}"
        )
    return elements


def unpack_rgb(
    features: npt.NDArray[np.floating[Any]], height: int, width: int
) -> npt.NDArray[np.float32]:
    """Turn packed pixels ``R << 16 | G << 8 | B`` into one NHWC RGB float32 image in 0..1.

    Args:
        features: ``height * width`` packed pixel values (any float dtype; float32
            represents every 24-bit value exactly).

    Raises:
        RequestError: if a value is not finite or not in ``0..0xFFFFFF``.
    """
    if not bool(np.all((features >= 0) & (features <= MAX_PACKED_PIXEL))):  # NaN fails too
        raise RequestError(
            f"features must be packed RGB pixels (R<<16 | G<<8 | B) in 0..{MAX_PACKED_PIXEL}"
        )
    packed = features.astype(np.uint32)
    rgb = np.empty((height * width, 3), dtype=np.uint8)
    rgb[:, 0] = packed >> 16
    rgb[:, 1] = (packed >> 8) & 0xFF
    rgb[:, 2] = packed & 0xFF
    pixels: npt.NDArray[np.float32] = rgb.astype(np.float32) / np.float32(255.0)
    return pixels.reshape(1, height, width, 3)


@dataclass(frozen=True)
class ModelInfo:
    """What ``hello`` reports about the model: labels, input size and project identity."""

    labels: tuple[str, ...]
    width: int
    height: int
    project_name: str
    deploy_version: int
    project_id: int = 0
    project_owner: str = "allscreen"

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> ModelInfo:
        """Read ONNX ``metadata_props``: ``labels`` (JSON list), ``input_size`` (``96``,
        ``[h, w]`` or ``HxW``), ``project_name``, ``deploy_version``; optional
        ``project_id`` and ``project_owner``.

        Raises:
            ValueError: if a required key is missing or malformed.
        """
        try:
            labels = json.loads(meta["labels"])
            size = meta["input_size"].lower().replace("x", ",")
            dims = json.loads(f"[{size.strip('[]')}]")
            info = cls(
                labels=tuple(labels),
                height=int(dims[0]),
                width=int(dims[-1]),
                project_name=meta["project_name"],
                deploy_version=int(float(meta["deploy_version"])),
                project_id=int(meta.get("project_id", "0")),
                project_owner=meta.get("project_owner", "allscreen"),
            )
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise ValueError(f"bad or missing ONNX metadata: {exc!r}") from exc
        if (
            not isinstance(labels, list)
            or not labels
            or not all(isinstance(x, str) and x for x in labels)
        ):
            raise ValueError("metadata 'labels' must be a non-empty list of non-empty strings")
        if len(set(labels)) != len(labels) or any(sanitize(x) != x for x in labels):
            raise ValueError("labels must be unique and free of braces (the SDK counts them)")
        if len(dims) not in (1, 2) or info.width < 1 or info.height < 1:
            raise ValueError(f"metadata 'input_size' is not a size: {meta['input_size']!r}")
        return info


def hello_reply(
    rid: int, info: ModelInfo, shm: FeatureShm | None, shm_error: str = ""
) -> dict[str, Any]:
    """The ``hello`` reply, field for field as Edge Impulse's C++ runner (eim.cpp) writes
    it for an image classifier (no DSP block, no anomaly, no thresholds)."""
    n = info.width * info.height
    reply: dict[str, Any] = {
        "id": rid,
        "success": True,
        "project": {
            "id": info.project_id,
            "owner": info.project_owner,
            "name": info.project_name,
            "deploy_version": info.deploy_version,
            "impulse_id": 1,
            "impulse_name": "Impulse #1",
        },
        "model_parameters": {
            "input_features_count": n,
            "sensor": SENSOR_CAMERA,
            "frequency": 0,
            "interval_ms": 1,
            "axis_count": 1,
            "image_input_width": info.width,
            "image_input_height": info.height,
            "image_input_frames": 1,
            "image_channel_count": 3,
            "image_resize_mode": "squash",
            "label_count": len(info.labels),
            "has_anomaly": 0,
            "has_object_tracking": False,
            "labels": list(info.labels),
            "model_type": "classification",
            "slice_size": n // 4,
            "use_continuous_mode": False,
            "has_performance_calibration": False,
            "inferencing_engine": ENGINE_NONE,
            "thresholds": [],
        },
        "inferencing_engine": {"engine_type": ENGINE_NONE, "properties": ["onnxruntime"]},
    }
    if shm is not None:
        reply["features_shm"] = {
            "name": shm.name,
            "size_bytes": shm.elements * 4,
            "type": "float32",
            "elements": shm.elements,
        }
    elif shm_error:
        reply["features_shm_error"] = sanitize(shm_error)
    return reply


@contextmanager
def _untracked() -> Iterator[None]:
    """Keep multiprocessing's resource tracker out of a segment's life.

    On Python 3.11 ``SharedMemory`` registers each segment with the resource tracker, which
    means starting a tracker process, and that process "cleans up" (with a leak warning)
    any segment still registered when we exit. The server unlinks its own segment, so it
    suppresses the registration instead of registering and unregistering.
    """
    saved = resource_tracker.register, resource_tracker.unregister

    def skip(name: object, rtype: str) -> None:
        """Do not track."""

    resource_tracker.register = resource_tracker.unregister = skip
    try:
        yield
    finally:
        resource_tracker.register, resource_tracker.unregister = saved


class FeatureShm:
    """The POSIX shared memory segment of ``classify_shm``: ``elements`` float32 features."""

    def __init__(self, elements: int, name: str) -> None:
        """Create the segment ``/<name>``.

        Raises:
            OSError: if it cannot be created (e.g. it exists, or /dev/shm is missing).
        """
        with _untracked():
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=elements * 4)
        self.elements = elements
        self.name = "/" + self._shm.name  # as shm_open(3) takes it; the SDK strips the "/"
        self.array: npt.NDArray[np.float32] = np.ndarray(
            (elements,), dtype=np.float32, buffer=self._shm.buf
        )

    def close(self) -> None:
        """Unmap and unlink the segment."""
        del self.array  # the mapping cannot close while a view exports it
        with _untracked():
            self._shm.close()
            self._shm.unlink()
