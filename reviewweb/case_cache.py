"""A run's case rows (and its model's labels), kept between requests, updated cheaply.

`readout.cases.case_rows` aggregates every image of a run (about 0.4 s for 200,000 images on
this machine, `bench.review_worklist`), too slow to repeat on every page while a reviewer
presses keys and results keep arriving. So the rows are kept per run with what they were
computed from: the run's image count, its result counts per status, the policy in force, the
newest verdict id and the highest result id counted. Each request reads those (index-only
counts) and recounts only what changed:
- newer verdicts: the cases of the images they name;
- new results: the cases of the results above the highest id counted, provided the run's
  result counts grew by exactly those rows. Anything else (a failure turned into a result in
  place, a row committed late below the mark, new images, another policy) recounts the run.
The labels a verdict may name (`allowed_labels`, an aggregate over the run's results) are kept
the same way. `warm` counts the newest runs when the server starts. Nothing is stored in the
database.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from allscreen.policy import ScreeningPolicy
from allscreen.policy_store import policy_in_force
from allscreen.schema import STATUS_DONE, STATUS_FAILED, Image, Result, Run, Verdict
from readout.cases import CaseRow, case_rows, has_cases
from readout.verdicts import allowed_labels

MAX_RUNS = 16  #: runs whose rows are kept; a reviewer works on one or two at a time
WARM_RUNS = 4  #: runs counted when the server starts: the ones reviewers open first
MAX_RECOUNT_CASES = 1000  #: above this many changed cases, recounting the run is as quick


@dataclass(frozen=True, slots=True)
class Basis:
    """What a run's kept rows were computed from."""

    images: int
    done: int
    failed: int
    policy: str  #: the policy in force, as JSON
    verdict_id: int  #: the newest verdict counted
    result_id: int  #: the highest result id counted


@dataclass(frozen=True, slots=True)
class RunView:
    """What the pages need of a run, as of its `basis`."""

    basis: Basis
    rows: dict[int, CaseRow] | None  #: case rows by case id (None until a page asks)
    labels: list[str] | None  #: labels a verdict may name (None until a page asks)


def _basis(engine: Engine, run_id: int, policy: ScreeningPolicy, result_id: int) -> Basis:
    """The run's counts now; `result_id` is carried over (the caller knows the mark)."""
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
    return Basis(
        int(images),
        int(per_status.get(STATUS_DONE, 0)),
        int(per_status.get(STATUS_FAILED, 0)),
        policy.to_json(),
        int(newest),
        result_id,
    )


def _highest_result(engine: Engine, run_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.max(Result.id)).where(Result.run_id == run_id)) or 0)


@dataclass(frozen=True, slots=True)
class _Since:
    done: int
    failed: int
    highest: int
    case_ids: frozenset[int]


def _results_since(engine: Engine, run_id: int, result_id: int) -> _Since:
    """The run's results above `result_id`: counts per status, highest id, their cases."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Result.id, Result.status, Image.case_id)
            .join(Image, Image.id == Result.image_id)
            .where(Result.run_id == run_id, Result.id > result_id)
        ).all()
    return _Since(
        sum(r.status == STATUS_DONE for r in rows),
        sum(r.status == STATUS_FAILED for r in rows),
        max((int(r.id) for r in rows), default=result_id),
        frozenset(int(r.case_id) for r in rows if r.case_id is not None),
    )


def _only_added(old: Basis, now: Basis, since: _Since) -> bool:
    """Whether `now` is `old` plus exactly the rows of `since`, nothing changed in place."""
    return (
        (now.images, now.policy) == (old.images, old.policy)
        and now.done == old.done + since.done
        and now.failed == old.failed + since.failed
    )


def _verdict_cases(engine: Engine, run_id: int, verdict_id: int) -> set[int]:
    """Cases holding images with verdicts newer than `verdict_id`."""
    with engine.connect() as conn:
        return {
            int(c)
            for c in conn.scalars(
                select(Image.case_id)
                .join(Verdict, Verdict.image_id == Image.id)
                .where(Verdict.run_id == run_id, Verdict.id > verdict_id)
                .distinct()
            )
            if c is not None
        }


class CaseRowCache:
    """Per-run views for the pages of one server (thread-safe; pages run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[int, RunView] = {}

    def view(
        self, engine: Engine, run: Run, policy: ScreeningPolicy, *, rows: bool, labels: bool
    ) -> RunView:
        """The run as of now, with its case rows (in name order) and verdict labels if asked."""
        with self._lock:
            kept = self._runs.get(run.id)
        if kept is not None and kept.rows is not None:
            kept = self._update(engine, run, policy, kept)
        else:
            now = _basis(engine, run.id, policy, 0)
            if kept is None or replace(kept.basis, result_id=0) != now:
                kept = RunView(now, None, None)
        if rows and kept.rows is None:
            kept = self._count(engine, run, policy, kept)
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
    def _count(engine: Engine, run: Run, policy: ScreeningPolicy, kept: RunView) -> RunView:
        """Count the whole run. The mark and counts are read first: what lands meanwhile is
        either above the mark (recounted next time) or makes the counts disagree (a recount)."""
        mark = _highest_result(engine, run.id)
        basis = _basis(engine, run.id, policy, mark)
        fresh = {r.case_id: r for r in case_rows(engine, run.id, policy)}
        return RunView(basis, fresh, kept.labels if kept.basis.done == basis.done else None)

    def _update(self, engine: Engine, run: Run, policy: ScreeningPolicy, kept: RunView) -> RunView:
        """Bring kept rows up to date: the changed cases where that is sound, else the run."""
        assert kept.rows is not None
        old = kept.basis
        since = _results_since(engine, run.id, old.result_id)
        now = _basis(engine, run.id, policy, since.highest)
        if replace(now, verdict_id=0) == replace(old, verdict_id=0):
            if now.verdict_id == old.verdict_id:
                return kept
        elif not _only_added(old, now, since):
            # Rows may have landed between the two reads: read them again once.
            since = _results_since(engine, run.id, old.result_id)
            now = replace(now, result_id=since.highest)
            if not _only_added(old, now, since):
                return self._count(engine, run, policy, replace(kept, labels=None))
        changed = set(since.case_ids)
        if now.verdict_id > old.verdict_id:
            changed |= _verdict_cases(engine, run.id, old.verdict_id)
        if len(changed) > MAX_RECOUNT_CASES:
            return self._count(engine, run, policy, kept)
        rows = dict(kept.rows)
        for row in case_rows(engine, run.id, policy, case_ids=changed) if changed else []:
            rows[row.case_id] = row
        labels = kept.labels if now.done == old.done else None
        return RunView(now, rows, labels)


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
