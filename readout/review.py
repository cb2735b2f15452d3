"""The review queue: what needs a person, most urgent first.

With cases, the queue is the cases whose call is positive or review: positive cases first,
then review cases, each by their highest malignant score. Without cases, it is the images the
model called positive or review, in the same order. Reviewed items stay listed (marked), so
the queue also shows how far the review has got.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from allscreen.errors import PolicyError
from allscreen.policy import CALL_POSITIVE, CALL_REVIEW
from allscreen.policy_store import InForce, policy_in_force
from allscreen.schema import Case, Image, Run
from readout.calls import image_calls
from readout.cases import CaseRow, case_rows

_FLAGGED = (CALL_POSITIVE, CALL_REVIEW)


@dataclass(frozen=True, slots=True)
class FlaggedImage:
    """An image a person should look at, with what the model said and any verdict."""

    image_id: int
    case: str | None
    path: str
    sha256: str
    model_call: str
    final_call: str
    label: str | None
    confidence: float | None
    positive_score: float | None
    verdict: str | None
    reviewer: str | None


def require_policy(engine: Engine, run: Run) -> InForce:
    """The run's policy in force, or a clear error saying how to set one."""
    in_force = policy_in_force(engine, run)
    if in_force is None:
        raise PolicyError(
            f"run {run.name} has no screening policy and its model reports none, so it has "
            "per-image labels only; set one with `allscreen policy set RUN --policy FILE` "
            "(or --negative-label LABEL --min-negative-score X)"
        )
    return in_force


def queue_cases(engine: Engine, run: Run, in_force: InForce) -> list[CaseRow]:
    """Cases needing a person, most urgent first."""
    rows = [r for r in case_rows(engine, run.id, in_force.policy) if r.call in _FLAGGED]
    return sorted(rows, key=CaseRow.urgency)


def flagged_images(
    engine: Engine, run: Run, in_force: InForce, *, queue: list[CaseRow] | None = None
) -> list[FlaggedImage]:
    """Images the model flagged (positive or review), in queue order (by case where any).

    `queue` is the run's case queue (`queue_cases`) when the caller already has it.
    """
    sub = image_calls(engine, run.id, in_force.policy).subquery()
    stmt = (
        select(sub, Image.path, Image.sha256, Case.name)
        .join(Image, Image.id == sub.c.image_id)
        .outerjoin(Case, Case.id == sub.c.case_id)
        .where(sub.c.model_call.in_(_FLAGGED) | sub.c.final_call.in_(_FLAGGED))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if queue is None:
        queue = queue_cases(engine, run, in_force)
    rank = {r.case_id: i for i, r in enumerate(queue)}
    images = [
        FlaggedImage(
            int(r.image_id),
            r.name,
            r.path,
            r.sha256,
            r.model_call,
            r.final_call,
            r.label,
            r.confidence,
            r.positive_score,
            r.verdict,
            r.reviewer,
        )
        for r in rows
    ]
    case_of = {int(r.image_id): r.case_id for r in rows}

    def key(x: FlaggedImage) -> tuple[int, int, float, str]:
        return (
            rank.get(case_of[x.image_id], len(rank)),
            _FLAGGED.index(x.model_call) if x.model_call in _FLAGGED else 2,
            -(x.positive_score or 0.0),
            x.path,
        )

    return sorted(images, key=key)
