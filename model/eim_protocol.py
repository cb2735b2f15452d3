"""The ``.eim`` runner protocol's messages: request arguments, features and ``hello``.

An ``.eim`` model is an executable started as ``MODEL SOCKET_PATH``; the framing of its
socket stream is :mod:`model.eim_framing`, the shared memory segment :mod:`model.eim_shm`.
This module validates request arguments, unpacks packed-RGB features, reads the model
description from ONNX metadata (:class:`ModelInfo`, including the screening operating
point) and builds the ``hello`` reply. It is stdlib + numpy only, so it can be tested
without onnxruntime.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from model.eim_framing import sanitize
from model.eim_shm import FeatureShm

MAX_PACKED_PIXEL = 0xFFFFFF
"""Largest packed pixel value ``R << 16 | G << 8 | B``."""

SENSOR_CAMERA = 3  #: EI_CLASSIFIER_SENSOR_CAMERA
ENGINE_NONE = 255  #: EI_CLASSIFIER_NONE: onnxruntime is not one of Edge Impulse's engines


class RequestError(Exception):
    """Raised when a request is well-formed JSON but its arguments are invalid."""


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


SCREENING_KEYS = (
    "screening_negative_labels",
    "screening_min_negative_score",
    "screening_min_confidence",
)
"""ONNX metadata keys of the screening operating point (written by ``model.export``)."""


@dataclass(frozen=True)
class ScreeningThreshold:
    """The screening operating point, as ``hello`` reports it in ``thresholds``.

    An image is negative if its negative labels' scores sum to at least
    ``min_negative_score`` and its top score is at least ``min_confidence``; positive if its
    top label is not negative, its top score is at least ``min_confidence`` and the
    negative score is below ``min_negative_score``; anything else goes to review. The
    application reads this entry; its key names are a contract.
    """

    negative_labels: tuple[str, ...]
    min_negative_score: float
    min_confidence: float
    min_positive_images: int = 1

    def to_json(self, threshold_id: int = 0) -> dict[str, Any]:
        """The entry of ``model_parameters.thresholds``."""
        return {
            "id": threshold_id,
            "type": "screening",
            "negative_labels": list(self.negative_labels),
            "min_negative_score": self.min_negative_score,
            "min_confidence": self.min_confidence,
            "min_positive_images": self.min_positive_images,
        }

    @classmethod
    def from_metadata(
        cls, meta: Mapping[str, str], labels: tuple[str, ...]
    ) -> ScreeningThreshold | None:
        """Read :data:`SCREENING_KEYS`; None when the model carries none of them.

        Raises:
            ValueError: if only some keys are present, or a value is malformed.
        """
        present = [key in meta for key in SCREENING_KEYS]
        if not any(present):
            return None
        if not all(present):
            raise ValueError(f"ONNX metadata must carry all of {SCREENING_KEYS} or none")
        labels_key, score_key, confidence_key = SCREENING_KEYS
        negative = json.loads(meta[labels_key])
        if (
            not isinstance(negative, list)
            or not negative
            or not all(isinstance(x, str) and x in labels for x in negative)
        ):
            raise ValueError(f"metadata {labels_key!r} must be a non-empty list of model labels")
        point = cls(tuple(negative), float(meta[score_key]), float(meta[confidence_key]))
        if not (0 <= point.min_negative_score <= 1 and 0 <= point.min_confidence <= 1):
            raise ValueError("screening scores must lie in 0..1")
        return point


@dataclass(frozen=True)
class ModelInfo:
    """What ``hello`` reports about the model: labels, input size, project identity and
    the screening operating point (if the model carries one)."""

    labels: tuple[str, ...]
    width: int
    height: int
    project_name: str
    deploy_version: int
    project_id: int = 0
    project_owner: str = "allscreen"
    screening: ScreeningThreshold | None = None

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> ModelInfo:
        """Read ONNX ``metadata_props``: ``labels`` (JSON list), ``input_size`` (``96``,
        ``[h, w]`` or ``HxW``), ``project_name``, ``deploy_version``; optional
        ``project_id``, ``project_owner`` and the screening keys (:data:`SCREENING_KEYS`).

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
                screening=ScreeningThreshold.from_metadata(meta, tuple(labels)),
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
    it for an image classifier (no DSP block, no anomaly); ``thresholds`` holds the
    screening operating point when the model carries one, else it is empty."""
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
            "thresholds": [] if info.screening is None else [info.screening.to_json()],
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
