"""The review queue for people (`review RUN`) and as a CSV worklist (`review RUN --csv`).

The worklist has one row per flagged image in queue order, with an empty `verdict` column:
filled in and given back to `review RUN --import`, it records the verdicts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from allscreen.schema import Run
from readout.cases import has_cases
from readout.review import flagged_images, queue_cases, require_policy
from readout.tables import table_text

WORKLIST_COLUMNS = [
    "case",
    "path",
    "sha256",
    "call",
    "label",
    "confidence",
    "positive_score",
    "current_verdict",
    "current_reviewer",
    "verdict",
    "note",
]


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def print_queue(engine: Engine, run: Run, echo: Callable[[str], Any]) -> None:
    """Print the queue: cases (with their counts) or images, most urgent first."""
    in_force = require_policy(engine, run)
    echo(f"run {run.name}: {in_force.policy.describe()}  [{in_force.source}]")
    if has_cases(engine, run.id):
        cases = queue_cases(engine, run, in_force)
        done = sum(c.reviewed for c in cases)
        echo(f"{len(cases)} cases need a person; {done} of them fully reviewed")
        if cases:
            echo(
                table_text(
                    ["case", "call", "images", "positive", "review", "max P(+)", "reviewed"],
                    (
                        [
                            c.name,
                            c.call,
                            c.images,
                            c.positive,
                            c.review,
                            _num(c.max_positive_score),
                            f"{c.flagged_reviewed}/{c.flagged}",
                        ]
                        for c in cases
                    ),
                    right=["images", "positive", "review", "max P(+)", "reviewed"],
                )
            )
        return
    images = flagged_images(engine, run, in_force)
    reviewed = sum(x.verdict is not None for x in images)
    echo(f"{len(images)} images need a person; {reviewed} reviewed")
    if images:
        echo(
            table_text(
                ["call", "label", "conf", "P(+)", "verdict", "path"],
                (
                    [
                        x.model_call,
                        x.label,
                        _num(x.confidence),
                        _num(x.positive_score),
                        x.verdict or "-",
                        x.path,
                    ]
                    for x in images
                ),
                right=["conf", "P(+)"],
            )
        )


def write_worklist(engine: Engine, run: Run, writer: Any) -> int:
    """Write the flagged images as a CSV worklist (a `csv.writer`); returns the row count."""
    in_force = require_policy(engine, run)
    writer.writerow(WORKLIST_COLUMNS)
    images = flagged_images(engine, run, in_force)
    for x in images:
        writer.writerow(
            [
                x.case or "",
                x.path,
                x.sha256,
                x.model_call,
                x.label or "",
                _num(x.confidence),
                _num(x.positive_score),
                x.verdict or "",
                x.reviewer or "",
                "",
                "",
            ]
        )
    return len(images)
