"""The figures behind `allscreen report`: one run's rows read once, then summarised in Python."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, select

from allscreen.schema import STATUS_DONE, Image, Result, Run
from readout.report_screening import ScreeningData, load_screening
from readout.status import status_dict

MAX_FAILURES_LISTED = 200  #: failed images listed one by one; the rest are only counted


@dataclass(frozen=True, slots=True)
class ResultLine:
    """One image's outcome, as the report needs it."""

    path: str
    status: str | None  #: None while the image has no result
    label: str | None
    ground_truth: str | None
    device: str | None
    inference_ms: float | None
    queued_at: datetime | None
    finished_at: datetime | None
    error: str | None
    model: str | None

    @property
    def queue_to_result_s(self) -> float | None:
        """Seconds from the batch being queued to this image's result, if both are known."""
        if self.queued_at is None or self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.queued_at).total_seconds())


@dataclass(frozen=True, slots=True)
class ClassScore:
    """Precision and recall of one class against ground truth."""

    label: str
    support: int  #: images whose ground truth is this class
    predicted: int  #: judged images predicted as this class
    precision: float | None
    recall: float | None


@dataclass(slots=True)
class ReportData:
    """Everything the report shows about one run."""

    run: Run
    status: dict[str, Any]
    lines: list[ResultLine]
    models: list[str] = field(default_factory=list)
    screening: ScreeningData | None = None  #: None when the run has no policy in force

    @property
    def done(self) -> list[ResultLine]:
        """Classified images."""
        return [x for x in self.lines if x.status == STATUS_DONE]

    @property
    def failures(self) -> list[ResultLine]:
        """Images that could not be classified."""
        return [x for x in self.lines if x.status is not None and x.status != STATUS_DONE]

    @property
    def judged(self) -> list[ResultLine]:
        """Classified images whose ground truth is known."""
        return [x for x in self.done if x.ground_truth is not None]

    def predicted_counts(self) -> Counter[str]:
        """Classified images per predicted label."""
        return Counter(x.label for x in self.done if x.label is not None)

    def truth_counts(self) -> Counter[str]:
        """Images per ground-truth label (every registered image that has one)."""
        return Counter(x.ground_truth for x in self.lines if x.ground_truth is not None)

    def labels(self) -> list[str]:
        """Every label seen, predicted or true, in sorted order (the matrix axes)."""
        seen = {x.label for x in self.judged if x.label} | {x.ground_truth for x in self.judged}
        return sorted(s for s in seen if s is not None)

    def confusion(self) -> list[list[int]]:
        """matrix[i][j]: judged images of true class labels()[i] predicted as labels()[j]."""
        labels = self.labels()
        index = {label: i for i, label in enumerate(labels)}
        matrix = [[0] * len(labels) for _ in labels]
        for x in self.judged:
            assert x.ground_truth is not None and x.label is not None
            matrix[index[x.ground_truth]][index[x.label]] += 1
        return matrix

    def class_scores(self) -> list[ClassScore]:
        """Per-class precision (of its predictions) and recall (of its true images)."""
        pairs: Counter[tuple[str, str]] = Counter()
        for x in self.judged:
            assert x.ground_truth is not None and x.label is not None
            pairs[x.ground_truth, x.label] += 1
        return class_scores_of(pairs)

    def failure_reasons(self) -> list[tuple[str, int]]:
        """Distinct failure reasons with their counts, most frequent first."""
        return Counter(x.error or "unknown" for x in self.failures).most_common()

    def by_device(self) -> dict[str, list[ResultLine]]:
        """Classified images grouped by device name, sorted by name."""
        groups: dict[str, list[ResultLine]] = {}
        for x in self.done:
            groups.setdefault(x.device or "?", []).append(x)
        return dict(sorted(groups.items()))


def class_scores_of(pairs: Mapping[tuple[str, str], int]) -> list[ClassScore]:
    """Per-class precision and recall from counts of (true label, predicted label) pairs."""
    labels = sorted({t for t, _ in pairs} | {p for _, p in pairs})
    out = []
    for label in labels:
        support = sum(n for (t, _), n in pairs.items() if t == label)
        predicted = sum(n for (_, p), n in pairs.items() if p == label)
        hit = pairs.get((label, label), 0)
        out.append(
            ClassScore(
                label,
                support,
                predicted,
                hit / predicted if predicted else None,
                hit / support if support else None,
            )
        )
    return out


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back naive; they were written in UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def load_report(engine: Engine, run: Run, *, archive_root: Path | None = None) -> ReportData:
    """Read run `run`'s images and results (one query) plus its status summary; thumbnails of
    a run that stores relative paths are read under `archive_root`."""
    stmt = (
        select(
            Image.path,
            Image.ground_truth,
            Result.status,
            Result.label,
            Result.device,
            Result.inference_ms,
            Result.queued_at,
            Result.finished_at,
            Result.error,
            Result.model_name,
            Result.model_version,
            Result.model_sha256,
        )
        .outerjoin(Result, and_(Result.run_id == Image.run_id, Result.image_id == Image.id))
        .where(Image.run_id == run.id)
        .order_by(Image.id)
    )
    lines: list[ResultLine] = []
    models: dict[str, None] = {}
    with engine.connect() as conn:
        for r in conn.execute(stmt):
            model = None
            if r.model_sha256:
                model = f"{r.model_name} v{r.model_version} ({r.model_sha256[:12]})"
                models.setdefault(model, None)
            lines.append(
                ResultLine(
                    path=r.path,
                    status=r.status,
                    label=r.label,
                    ground_truth=r.ground_truth,
                    device=r.device,
                    inference_ms=r.inference_ms,
                    queued_at=_utc(r.queued_at),
                    finished_at=_utc(r.finished_at),
                    error=r.error,
                    model=model,
                )
            )
    status = status_dict(engine, run)
    screening = load_screening(
        engine, run, status=status.get("screening"), archive_root=archive_root
    )
    return ReportData(run, status, lines, list(models), screening)
