"""`export --cases`: one CSV row per case, with its call, counts and highest malignant score."""

from __future__ import annotations

import csv
from typing import TextIO

from sqlalchemy import Engine

from allscreen.schema import Run
from readout.cases import case_rows
from readout.review import require_policy

CASE_COLUMNS = [
    "case",
    "patient",
    "call",
    "images",
    "positive",
    "review",
    "negative",
    "failed",
    "pending",
    "flagged",
    "flagged_reviewed",
    "max_positive_score",
    "policy",
]


def export_cases_csv(engine: Engine, run: Run, out: TextIO) -> int:
    """Write one row per case of `run` (final calls: reviewers' verdicts count)."""
    in_force = require_policy(engine, run)
    writer = csv.writer(out)
    writer.writerow(CASE_COLUMNS)
    rows = case_rows(engine, run.id, in_force.policy)
    for r in rows:
        writer.writerow(
            [
                r.name,
                r.patient or "",
                r.call,
                r.images,
                r.positive,
                r.review,
                r.negative,
                r.failed,
                r.pending,
                r.flagged,
                r.flagged_reviewed,
                "" if r.max_positive_score is None else f"{r.max_positive_score:.6g}",
                in_force.policy.describe(),
            ]
        )
    return len(rows)
