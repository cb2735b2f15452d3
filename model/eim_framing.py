"""Framing of the Edge Impulse Linux ``.eim`` runner protocol: requests in, replies out.

A client (the ``edge_impulse_linux`` SDK) connects once and sends raw JSON objects with no
delimiter between them, each carrying an integer ``"id"``. Every reply is one JSON object
followed by ``"\\n"`` and a NUL byte. This module splits the request stream into objects
(:class:`RequestScanner`) and serialises replies; it is stdlib only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""Largest request accepted, in bytes. A JSON ``classify`` of a 96x96 image is ~90 kB, and
the real runner's whole buffer is 32 MiB; anything near this cap is a broken client."""

REPLY_TERMINATOR = b"\n\x00"
"""Bytes after each reply: the SDK reads until a chunk ends in NUL."""

_NOT_WHITESPACE = re.compile(rb"[^ \t\r\n]")
_IN_OBJECT = re.compile(rb'[{}"]')
_IN_STRING = re.compile(rb'["\\]')
_TRAILING_ID = re.compile(rb'"id"\s*:\s*(-?\d+)\s*}\s*$')
_TAIL_KEEP = 64  # bytes kept of a discarded request, enough to find its trailing "id"


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
