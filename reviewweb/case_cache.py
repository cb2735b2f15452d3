"""A run's case rows (and its model's labels), kept between requests, updated cheaply.

`readout.cases.case_rows` aggregates every image of a run: about 1.5 s for 200,000 images
on SQLite on this machine, too slow to repeat on every page while a reviewer presses keys.
A verdict changes only the cases of the images it names, so the rows are kept per run with
what they were computed from: the run's image and result counts (per status), the policy in
force, and the newest verdict id. Each request reads those (index-only counts); cases with
newer verdicts are recounted from their own images (`count_case`), and anything else that
changed (new results, another policy) recomputes the run; the labels a verdict may name
(`allowed_labels`, an aggregate over the run's results) are kept the same way. `warm` counts
the newest runs when the server starts. Nothing is stored in the database.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from allscreen.policy import CALL_NEGATIVE, CALL_POSITIVE, CALL_REVIEW, ScreeningPolicy
from allscreen.policy_store import policy_in_force
from allscreen.schema import STATUS_DONE, STATUS_FAILED, Case, Image, Result, Run, Verdict
from readout.cases import CaseRow, case_rows, has_cases
from readout.verdicts import allowed_labels
from reviewweb.worklist import ImageCard, image_cards

MAX_RUNS = 16  #: runs whose rows are kept; a reviewer works on one or two at a time
WARM_RUNS = 4  #: runs counted when the server starts: the ones reviewers open first


@dataclass(frozen=True, slots=True)
class RunView:
    """What the pages need of a run, as of its `basis` and newest verdict."""

    basis: tuple[int, int, int, str]  #: images, done, failed, policy JSON
    verdict_id: int  #: the newest verdict counted
    rows: dict[int, CaseRow] | None  #: case rows by case id (None until a page asks)
    labels: list[str] | None  #: labels a verdict may name (None until a page asks)


def count_case(case: Case, cards: Sequence[ImageCard], policy: ScreeningPolicy) -> CaseRow:
    """A case's row from its image cards: the counts `case_rows` makes in SQL."""
    scores = [c.positive_score for c in cards if c.positive_score is not None]
    return CaseRow(
        case_id=case.id,
        name=case.name,
        patient=case.patient,
        images=len(cards),
        positive=sum(c.final_call == CALL_POSITIVE for c in cards),
        review=sum(c.final_call == CALL_REVIEW for c in cards),
        negative=sum(c.final_call == CALL_NEGATIVE for c in cards),
        failed=sum(c.status == STATUS_FAILED for c in cards),
        pending=sum(c.status is None for c in cards),
        flagged=sum(c.flagged for c in cards),
        flagged_reviewed=sum(c.flagged and c.verdict is not None for c in cards),
        max_positive_score=float(max(scores)) if scores else None,
        min_positive_images=policy.min_positive_images,
    )


def _basis(
    engine: Engine, run_id: int, policy: ScreeningPolicy
) -> tuple[tuple[int, int, int, str], int]:
    with engine.connect() as conn:
        images = conn.scalar(select(func.count()).where(Image.run_id == run_id)) or 0
        per_status = dict(
            conn.execute(
                select(Result.status, func.count())
                .where(Result.run_id == run_id)
                .group_by(Result.status)
            ).all()
        )
        newest = conn.scalar(select(func.max(Verdict.id)).where(Verdict.run_id == run_id)) or 0
    done, failed = per_status.get(STATUS_DONE, 0), per_status.get(STATUS_FAILED, 0)
    return (int(images), int(done), int(failed), policy.to_json()), int(newest)


class CaseRowCache:
    """Per-run views for the pages of one server (thread-safe; pages run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[int, RunView] = {}

    def view(
        self, engine: Engine, run: Run, policy: ScreeningPolicy, *, rows: bool, labels: bool
    ) -> RunView:
        """The run as of now, with its case rows (in name order) and verdict labels if asked."""
        basis, newest = _basis(engine, run.id, policy)
        with self._lock:
            kept = self._runs.get(run.id)
        if kept is None or kept.basis != basis:
            kept = RunView(basis, newest, None, None)
        if rows and kept.rows is None:
            fresh = {r.case_id: r for r in case_rows(engine, run.id, policy)}
            kept = replace(kept, rows=fresh, verdict_id=newest)
        elif kept.rows is not None and newest > kept.verdict_id:
            kept = replace(kept, rows=self._recount(engine, run, policy, kept), verdict_id=newest)
        if labels and kept.labels is None:
            kept = replace(kept, labels=allowed_labels(engine, run))
        with self._lock:
            if len(self._runs) >= MAX_RUNS and run.id not in self._runs:
                self._runs.clear()
            self._runs[run.id] = kept
        return kept

    def rows(self, engine: Engine, run: Run, policy: ScreeningPolicy) -> list[CaseRow]:
        """The run's case rows as `case_rows` would give them now (in name order)."""
        view = self.view(engine, run, policy, rows=True, labels=False)
        assert view.rows is not None
        return sorted(view.rows.values(), key=lambda r: r.name)

    @staticmethod
    def _recount(
        engine: Engine, run: Run, policy: ScreeningPolicy, kept: RunView
    ) -> dict[int, CaseRow]:
        assert kept.rows is not None
        with engine.connect() as conn:
            changed = conn.execute(
                select(Case.id, Case.name, Case.patient).where(
                    Case.id.in_(
                        select(Image.case_id)
                        .join(Verdict, Verdict.image_id == Image.id)
                        .where(Verdict.run_id == run.id, Verdict.id > kept.verdict_id)
                    )
                )
            ).all()
        rows = dict(kept.rows)
        for case_id, name, patient in changed:
            case = Case(id=case_id, name=name, patient=patient, run_id=run.id)
            cards = image_cards(engine, run, policy, (), case_id=case_id)
            rows[case_id] = count_case(case, cards, policy)
        return rows


def warm(engine: Engine, cache: CaseRowCache, *, runs: int = WARM_RUNS) -> int:
    """Count the newest runs' cases before anyone asks, so the first worklist is quick.

    Runs in a thread when `allscreen serve` starts; returns how many runs it counted."""
    with Session(engine, expire_on_commit=False) as session:
        newest = session.scalars(select(Run).order_by(Run.id.desc()).limit(runs)).all()
    counted = 0
    for run in newest:
        in_force = policy_in_force(engine, run)
        if in_force is not None and has_cases(engine, run.id):
            cache.view(engine, run, in_force.policy, rows=True, labels=False)
            counted += 1
    return counted
