"""What the pages show: a run's worklist of cases, and a case's (or the run's) image cards.

The worklist is every case the model flagged or whose call needs a person, in the review
queue's order (`CaseRow.urgency`: positive first, then review, higher scores first). A case
stays listed after its verdicts turn it negative, so progress ("reviewed x of y") only grows.
Everything is read through `readout` (calls derived in SQL at read time), never stored here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import Engine, and_, func, select

from allscreen.policy import CALL_POSITIVE, CALL_REVIEW, ScreeningPolicy
from allscreen.schema import Case, Image, Result, Run
from readout.calls import image_calls
from readout.cases import CASE_CALL_ORDER, CaseRow, case_call_counts

FLAGGED = (CALL_POSITIVE, CALL_REVIEW)
CALL_FILTERS = ("queue", "all", *CASE_CALL_ORDER)  #: `?call=`: queue is the default
REVIEWED_FILTERS = ("any", "no", "yes")  #: `?reviewed=`


@dataclass(frozen=True, slots=True)
class Worklist:
    """A run's cases in queue order, filtered, with the progress of the whole queue."""

    cases: list[CaseRow]  #: the cases the filters keep
    queue: int  #: cases in the queue (flagged, or positive/review)
    reviewed: int  #: of those, cases whose every flagged image has a verdict
    by_call: dict[str, int]  #: every case of the run per call
    images: int  #: images of the run in cases


def in_queue(row: CaseRow) -> bool:
    """Whether a person is asked to look at the case."""
    return row.flagged > 0 or row.call in FLAGGED


def worklist(cases: list[CaseRow], *, call: str, reviewed: str) -> Worklist:
    """The run's cases for the worklist page, `call` and `reviewed` being filter values."""
    rows = sorted(cases, key=CaseRow.urgency)
    queue = [r for r in rows if in_queue(r)]
    if call == "queue":
        kept = queue
    else:
        kept = rows if call == "all" else [r for r in rows if r.call == call]
    if reviewed != "any":
        kept = [r for r in kept if r.reviewed == (reviewed == "yes")]
    return Worklist(
        cases=kept,
        queue=len(queue),
        reviewed=sum(1 for r in queue if r.reviewed),
        by_call=case_call_counts(rows),
        images=sum(r.images for r in rows),
    )


def next_case(queue: Worklist, after: int) -> int | None:
    """The first unreviewed case of `queue` (a worklist with the default filters) but `after`."""
    for r in queue.cases:
        if not r.reviewed and r.case_id != after:
            return r.case_id
    return None


@dataclass(frozen=True, slots=True)
class ImageCard:
    """One image as the case page shows it: scores in the model's label order, calls, verdict."""

    image_id: int
    path: str
    status: str | None
    label: str | None
    confidence: float | None
    scores: list[tuple[str, float]]
    model_call: str | None
    final_call: str | None
    verdict: str | None
    reviewer: str | None
    positive_score: float | None

    @property
    def flagged(self) -> bool:
        """Whether the model sent the image to a person."""
        return self.model_call in FLAGGED


def _scores(text: str | None, labels: tuple[str, ...]) -> list[tuple[str, float]]:
    data = json.loads(text) if text else {}
    order = [x for x in labels if x in data] + sorted(x for x in data if x not in labels)
    return [(x, float(data[x])) for x in order]


def image_cards(
    engine: Engine,
    run: Run,
    policy: ScreeningPolicy,
    labels: tuple[str, ...],
    *,
    case_id: int | None = None,
    image_ids: list[int] | None = None,
) -> list[ImageCard]:
    """Cards for a case's images (or the given images of the run), flagged ones first."""
    sub = image_calls(engine, run.id, policy, case_id=case_id, image_ids=image_ids).subquery()
    stmt = (
        select(sub, Image.path, Result.scores)
        .join(Image, Image.id == sub.c.image_id)
        .outerjoin(Result, and_(Result.run_id == run.id, Result.image_id == sub.c.image_id))
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cards = [
        ImageCard(
            image_id=int(r.image_id),
            path=r.path,
            status=r.status,
            label=r.label,
            confidence=r.confidence,
            scores=_scores(r.scores, labels),
            model_call=r.model_call,
            final_call=r.final_call,
            verdict=r.verdict,
            reviewer=r.reviewer,
            positive_score=r.positive_score,
        )
        for r in rows
    ]
    return sorted(cards, key=lambda c: (not c.flagged, -(c.positive_score or 0.0), c.path))


def find_case(engine: Engine, run: Run, case_id: int) -> Case | None:
    """The case `case_id` if it belongs to `run`."""
    with engine.connect() as conn:
        row = conn.execute(
            select(Case.id, Case.name, Case.patient, Case.run_id).where(
                Case.id == case_id, Case.run_id == run.id
            )
        ).first()
    if row is None:
        return None
    return Case(id=row.id, name=row.name, patient=row.patient, run_id=row.run_id)


@dataclass(frozen=True, slots=True)
class RunLine:
    """A run on the runs page."""

    run_id: int
    name: str
    created: str
    images: int
    cases: int


def run_lines(engine: Engine) -> list[RunLine]:
    """Every run, newest first, with its image and case counts."""
    images = select(Image.run_id, func.count().label("n")).group_by(Image.run_id).subquery("im")
    cases = select(Case.run_id, func.count().label("n")).group_by(Case.run_id).subquery("ca")
    stmt = (
        select(Run.id, Run.name, Run.created_at, images.c.n, cases.c.n)
        .outerjoin(images, images.c.run_id == Run.id)
        .outerjoin(cases, cases.c.run_id == Run.id)
        .order_by(Run.id.desc())
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [
        RunLine(int(i), name, f"{when:%Y-%m-%d %H:%M}", int(n_im or 0), int(n_ca or 0))
        for i, name, when, n_im, n_ca in rows
    ]
