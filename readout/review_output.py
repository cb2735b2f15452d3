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
                f"{'case':<32}{'call':<10}{'images':>7}{'pos':>6}{'review':>8}"
                f"{'max P(+)':>10}{'reviewed':>10}"
            )
        for c in cases:
            echo(
                f"{c.name[:31]:<32}{c.call:<10}{c.images:>7}{c.positive:>6}{c.review:>8}"
                f"{_num(c.max_positive_score):>10}{c.flagged_reviewed:>6}/{c.flagged:<3}"
            )
        return
    images = flagged_images(engine, run, in_force)
    reviewed = sum(x.verdict is not None for x in images)
    echo(f"{len(images)} images need a person; {reviewed} reviewed")
    if images:
        echo(f"{'call':<10}{'label':<12}{'conf':>6}{'P(+)':>7}  {'verdict':<12}path")
    for x in images:
        echo(
            f"{x.model_call:<10}{(x.label or ''):<12}{_num(x.confidence):>6}"
            f"{_num(x.positive_score):>7}  {(x.verdict or '-'):<12}{x.path}"
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
