"""The task contract between producer and worker: task names and the batch message shape.

A batch travels as one JSON object. Each image carries one of: `blob`, the Redis key its bytes
wait under (the default `bytes` transport, see `allscreen.blobs`: devices share no
filesystem); `path`, a path on a shared mount (the `path` transport); or `data`, its bytes
base64-encoded in the message itself (accepted, for small tools; the producer does not send it).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

from allscreen.errors import BadMessage

TASK_CLASSIFY = "allscreen.classify_batch"  #: the Celery task name both sides agree on
MESSAGE_VERSION = 1  #: bumped when the shape below changes incompatibly

_BATCH_KEYS = {"v", "run_id", "queued_at", "model_sha256", "images"}
_IMAGE_KEYS = {"id", "sha256", "data", "path", "blob"}
_SOURCES = ("data", "path", "blob")


@dataclass(frozen=True, slots=True)
class ImageItem:
    """One image of a batch: its id, its content hash, and its bytes, its shared path or the
    Redis key of its bytes."""

    id: int
    sha256: str
    data: bytes | None = None
    path: str | None = None
    blob: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """A classification job: several images of one run."""

    run_id: int
    queued_at: float
    images: tuple[ImageItem, ...]
    model_sha256: str | None = None

    def to_message(self) -> dict[str, Any]:
        """The JSON-ready message for this batch."""
        items: list[dict[str, Any]] = []
        for img in self.images:
            item: dict[str, Any] = {"id": img.id, "sha256": img.sha256}
            if img.data is not None:
                item["data"] = base64.b64encode(img.data).decode("ascii")
            elif img.blob is not None:
                item["blob"] = img.blob
            else:
                item["path"] = img.path
            items.append(item)
        return {
            "v": MESSAGE_VERSION,
            "run_id": self.run_id,
            "queued_at": self.queued_at,
            "model_sha256": self.model_sha256,
            "images": items,
        }

    def describe(self) -> str:
        """A short description for monitors: ids and counts, never bytes or paths."""
        ids = [img.id for img in self.images]
        span = f"{min(ids)}..{max(ids)}" if ids else "-"
        return f"run={self.run_id} images={len(ids)} ids={span}"

    @classmethod
    def from_message(cls, msg: object) -> Batch:
        """Validate and parse a message; raise BadMessage on any deviation from the shape."""
        if not isinstance(msg, dict):
            raise BadMessage(f"batch message must be an object, got {type(msg).__name__}")
        unknown = set(msg) - _BATCH_KEYS
        if unknown:
            raise BadMessage(f"batch message has unknown fields: {sorted(unknown)}")
        if type(msg.get("v")) is not int or msg.get("v") != MESSAGE_VERSION:  # True == 1
            raise BadMessage(f"unsupported message version {msg.get('v')!r}")
        run_id, queued_at, pin = msg.get("run_id"), msg.get("queued_at"), msg.get("model_sha256")
        raw_images = msg.get("images")
        if not isinstance(run_id, int) or isinstance(run_id, bool):
            raise BadMessage("batch message needs an integer run_id")
        if (
            not isinstance(queued_at, int | float)
            or isinstance(queued_at, bool)
            or not math.isfinite(queued_at)
        ):
            raise BadMessage("batch message needs a finite numeric queued_at")
        if pin is not None and not isinstance(pin, str):
            raise BadMessage("model_sha256 must be a string or null")
        if not isinstance(raw_images, list) or not raw_images:
            raise BadMessage("batch message needs a non-empty images list")
        return cls(run_id, float(queued_at), tuple(_parse_item(i) for i in raw_images), pin)


def _parse_item(item: object) -> ImageItem:
    if not isinstance(item, dict):
        raise BadMessage("each image must be an object")
    unknown = set(item) - _IMAGE_KEYS
    if unknown:
        raise BadMessage(f"image has unknown fields: {sorted(unknown)}")
    image_id, sha, data, path, blob = (item.get(k) for k in ("id", "sha256", *_SOURCES))
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        raise BadMessage("image needs an integer id")
    if not isinstance(sha, str) or len(sha) != 64:
        raise BadMessage(f"image {image_id} needs a sha256 hex digest")
    if sum(v is not None for v in (data, path, blob)) != 1:
        raise BadMessage(f"image {image_id} needs exactly one of data, path or blob")
    if blob is not None:
        if not isinstance(blob, str) or not blob:
            raise BadMessage(f"image {image_id}: blob must be a Redis key")
        return ImageItem(image_id, sha, blob=blob)
    if data is not None:
        if not isinstance(data, str):
            raise BadMessage(f"image {image_id}: data must be base64 text")
        try:
            return ImageItem(image_id, sha, data=base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise BadMessage(f"image {image_id}: data is not valid base64") from exc
    if not isinstance(path, str):
        raise BadMessage(f"image {image_id}: path must be text")
    return ImageItem(image_id, sha, path=path)
