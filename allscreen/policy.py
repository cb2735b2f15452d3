"""A screening policy: how one image's scores become a call, and a case's calls one call.

An image is **negative** when the scores of the negative labels add up to at least
`min_negative_score` and its top score is at least `min_confidence`; **positive** when its top
label is not a negative label, its top score is at least `min_confidence` and the negative
score is below `min_negative_score`; else it goes to **review** (a person looks at it).
A case is positive when at least `min_positive_images` of its images are positive.

The JSON form uses the keys of the `screening` entry a model reports in its `hello`
(`model_parameters.thresholds`), so a model's own operating point reads as a policy.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from allscreen.errors import PolicyError

CALL_POSITIVE = "positive"  #: the model calls the image (or case) ALL/malignant with confidence
CALL_REVIEW = "review"  #: a person should look: the model is not sure
CALL_NEGATIVE = "negative"  #: the model calls it negative with the stated confidence
CALLS = (CALL_POSITIVE, CALL_REVIEW, CALL_NEGATIVE)
UNSURE = "unsure"  #: a reviewer's verdict that decides nothing (the image stays in review)
THRESHOLD_TYPE = "screening"  #: `type` of the policy's entry in hello's `thresholds`
_KEYS = ("negative_labels", "min_negative_score", "min_confidence", "min_positive_images")


@dataclass(frozen=True, slots=True)
class ScreeningPolicy:
    """The negative label(s), the two thresholds, and K for case calls."""

    negative_labels: tuple[str, ...]
    min_negative_score: float
    min_confidence: float = 0.0
    min_positive_images: int = 1

    def __post_init__(self) -> None:
        if not self.negative_labels:
            raise PolicyError("a screening policy needs at least one negative label")
        for label in self.negative_labels:
            if not label or '"' in label or "\\" in label:
                raise PolicyError(f"negative label {label!r} is empty or holds a quote")
        for name in ("min_negative_score", "min_confidence"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1):
                raise PolicyError(f"{name} must be a number from 0 to 1, got {value!r}")
        k = self.min_positive_images
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise PolicyError(f"min_positive_images must be a whole number ≥ 1, got {k!r}")

    def to_json(self) -> str:
        """The policy as stored and saved (the keys of hello's `screening` entry)."""
        data = asdict(self)
        data["negative_labels"] = list(self.negative_labels)
        return json.dumps(data, sort_keys=True)

    def describe(self) -> str:
        """One line for people: `negative = Benign ≥ 0.900; review below 0.800; K = 1`."""
        neg = " + ".join(self.negative_labels)
        return (
            f"negative = P({neg}) ≥ {self.min_negative_score:.3f}; "
            f"review below confidence {self.min_confidence:.3f}; "
            f"case positive at ≥ {self.min_positive_images} positive image(s)"
        )

    def check_labels(self, labels: list[str] | tuple[str, ...]) -> None:
        """Refuse a policy whose negative labels the model does not have."""
        missing = [x for x in self.negative_labels if x not in labels]
        if missing and labels:
            raise PolicyError(
                f"negative label(s) {', '.join(missing)} are not labels of the run's model "
                f"({', '.join(labels)})"
            )

    def call(self, negative_score: float, label: str, confidence: float) -> str:
        """The call for one classified image (the rule `readout.calls` applies in SQL)."""
        if negative_score >= self.min_negative_score and confidence >= self.min_confidence:
            return CALL_NEGATIVE
        if label not in self.negative_labels and confidence >= self.min_confidence:
            return CALL_POSITIVE
        return CALL_REVIEW

    def call_of_label(self, label: str) -> str:
        """The call a reviewer's verdict label stands for."""
        if label == UNSURE:
            return CALL_REVIEW
        return CALL_NEGATIVE if label in self.negative_labels else CALL_POSITIVE


def policy_from_mapping(data: Any, *, where: str) -> ScreeningPolicy:
    """A policy from its JSON form (or a hello `screening` entry), refusing unknown keys."""
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: a policy is a JSON object with keys {', '.join(_KEYS)}")
    extra = sorted(set(data) - set(_KEYS) - {"id", "type"})
    if extra:
        raise PolicyError(f"{where}: unknown policy key(s) {', '.join(extra)}")
    if "negative_labels" not in data or "min_negative_score" not in data:
        raise PolicyError(f"{where}: a policy needs negative_labels and min_negative_score")
    labels = data["negative_labels"]
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise PolicyError(f"{where}: negative_labels must be a list of label names")
    return ScreeningPolicy(
        negative_labels=tuple(labels),
        min_negative_score=data["min_negative_score"],
        min_confidence=data.get("min_confidence", 0.0),
        min_positive_images=data.get("min_positive_images", 1),
    )


def load_policy_file(path: Path) -> ScreeningPolicy:
    """A policy saved as JSON (by `policy fit --save` or by hand)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise PolicyError(f"policy file {path} is not JSON: {exc}") from exc
    return policy_from_mapping(data, where=str(path))


def policy_from_thresholds(thresholds: Any) -> ScreeningPolicy | None:
    """The model's own operating point: the `screening` entry of hello's thresholds, if any."""
    if not isinstance(thresholds, list):
        return None
    for entry in thresholds:
        if isinstance(entry, dict) and entry.get("type") == THRESHOLD_TYPE:
            return policy_from_mapping(entry, where="the model's hello thresholds")
    return None
