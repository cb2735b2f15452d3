"""The figures behind `allscreen report`, aggregated in the database, never read row by row.

Counts, label pairs, latency spreads and throughput come from the write-time tallies
(allscreen/tallies.py, readout/tally_reads.py, readout/report_figures.py); failure reasons
are grouped in SQL (the most frequent MAX_REASONS), and failed images are listed up to
MAX_FAILURES_LISTED, the rest only counted. A run of ten million images therefore costs
about what a run of ten thousand does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, func, select

from allscreen.schema import STATUS_FAILED, Image, Result, Run, TruthTally
from readout.report_figures import (
    Spread,
    Throughput,
    inference_spreads,
    throughput,
    wait_spreads,
)
from readout.report_screening import ScreeningData, load_screening
from readout.run_models import models_of_run
from readout.status import status_dict
from readout.tally_reads import label_pairs

MAX_FAILURES_LISTED = 200  #: failed images listed one by one; the rest are only counted
MAX_REASONS = 50  #: distinct failure reasons listed, most frequent first


@dataclass(frozen=True, slots=True)
class FailureLine:
    """One failed image, as the report lists it."""

    path: str
    device: str | None
    error: str | None


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
    """Everything the report shows about one run (aggregates only)."""

    run: Run
    status: dict[str, Any]
    #: done results per (ground truth, predicted label); None where there is none
    pairs: dict[tuple[str | None, str | None], int] = field(default_factory=dict)
    truth: dict[str, int] = field(default_factory=dict)  #: registered images per truth
    reasons: list[tuple[str, int]] = field(default_factory=list)  #: most frequent first
    failures_listed: list[FailureLine] = field(default_factory=list)  #: the first failures
    inference: dict[str, Spread] = field(default_factory=dict)  #: ms, per device
    waited: dict[str, Spread] = field(default_factory=dict)  #: queued to result, s
    throughput: Throughput | None = None
    models: list[str] = field(default_factory=list)
    screening: ScreeningData | None = None  #: None when the run has no policy in force

    @property
    def failures(self) -> int:
        """Images that could not be classified."""
        return int(self.status["failed"])

    @property
    def judged(self) -> int:
        """Classified images whose ground truth is known."""
        return sum(n for (t, _), n in self.pairs.items() if t is not None)

    def _judged_pairs(self) -> dict[tuple[str, str], int]:
        return {(t, p): n for (t, p), n in self.pairs.items() if t is not None and p is not None}

    def predicted_counts(self) -> Counter[str]:
        """Classified images per predicted label."""
        out: Counter[str] = Counter()
        for (_, label), n in self.pairs.items():
            if label is not None:
                out[label] += n
        return out

    def truth_counts(self) -> Counter[str]:
        """Images per ground-truth label (every registered image that has one)."""
        return Counter(self.truth)

    def labels(self) -> list[str]:
        """Every label seen, predicted or true, in sorted order (the matrix axes)."""
        return sorted({x for pair in self._judged_pairs() for x in pair})

    def confusion(self) -> list[list[int]]:
        """matrix[i][j]: judged images of true class labels()[i] predicted as labels()[j]."""
        labels = self.labels()
        index = {label: i for i, label in enumerate(labels)}
        matrix = [[0] * len(labels) for _ in labels]
        for (truth, label), n in self._judged_pairs().items():
            matrix[index[truth]][index[label]] += n
        return matrix

    def class_scores(self) -> list[ClassScore]:
        """Per-class precision (of its predictions) and recall (of its true images)."""
        return class_scores_of(self._judged_pairs())

    def failure_reasons(self) -> list[tuple[str, int]]:
        """Distinct failure reasons with their counts, most frequent first (up to MAX_REASONS)."""
        return self.reasons


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


def _failures(engine: Engine, run_id: int) -> tuple[list[tuple[str, int]], list[FailureLine]]:
    """The most frequent failure reasons, and the first failed images by id."""
    failed = and_(Result.run_id == run_id, Result.status == STATUS_FAILED)  # by the index
    reason = func.coalesce(Result.error, "unknown")
    n = func.count()
    with engine.connect() as conn:
        reasons = conn.execute(
            select(reason, n)
            .where(failed)
            .group_by(reason)
            .order_by(n.desc(), reason)
            .limit(MAX_REASONS)
        ).all()
        listed = conn.execute(
            select(Image.path, Result.device, Result.error)
            .join(Image, Image.id == Result.image_id)
            .where(failed)
            .order_by(Result.image_id)
            .limit(MAX_FAILURES_LISTED)
        ).all()
    return (
        [(str(r), int(c)) for r, c in reasons],
        [FailureLine(p, d, e) for p, d, e in listed],
    )


def _truth(engine: Engine, run_id: int) -> dict[str, int]:
    # The write-time tallies (allscreen/tallies.py); a group over the run's images took 0.4 s
    # at a million.
    stmt = select(TruthTally.truth, TruthTally.images).where(
        TruthTally.run_id == run_id, TruthTally.images > 0
    )
    with engine.connect() as conn:
        return {str(t): int(n) for t, n in conn.execute(stmt)}


def load_report(engine: Engine, run: Run, *, archive_root: Path | None = None) -> ReportData:
    """Aggregate run `run`'s figures in the database; thumbnails of a run that stores
    relative paths are read under `archive_root`."""
    status = status_dict(engine, run)
    reasons, listed = _failures(engine, run.id) if status["failed"] else ([], [])
    screening = load_screening(
        engine, run, status=status.get("screening"), archive_root=archive_root
    )
    return ReportData(
        run,
        status,
        pairs=label_pairs(engine, run.id),
        truth=_truth(engine, run.id),
        reasons=reasons,
        failures_listed=listed,
        inference=inference_spreads(engine, run.id),
        waited=wait_spreads(engine, run.id),
        throughput=throughput(engine, run.id),
        models=[
            f"{m.name} v{m.version} ({m.sha256[:12]})"
            for m in models_of_run(engine, run.id)
            if m.sha256
        ],
        screening=screening,
    )
