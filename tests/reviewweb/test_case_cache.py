"""The review page's kept case rows always equal a fresh `case_rows`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from allscreen.policy import CALL_NEGATIVE, CALL_POSITIVE, CALL_REVIEW, ScreeningPolicy
from allscreen.policy_store import set_policy
from allscreen.results import ResultRow, upsert_results
from allscreen.schema import STATUS_DONE, STATUS_FAILED, Image, Result, Run
from bench.review_worklist import LABELS, POLICY, build_run
from readout import cases
from readout.calls import image_calls
from readout.verdicts import VerdictInput, record_verdicts
from reviewweb import case_cache
from reviewweb.case_cache import CaseRowCache, warm


def _run(engine: Engine) -> tuple[int, Run]:
    """A run of 240 classified images in 8 cases."""
    run_id = build_run(engine, images=240, cases=8)
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(Run, run_id)
    assert run is not None
    return run_id, run


def test_kept_case_rows_follow_verdicts_case_by_case_and_a_new_policy_in_full(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, run = _run(engine)
    full: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> list[cases.CaseRow]:
        if kwargs.get("case_ids") is None:
            full.append(1)
        return cases.case_rows(*args, **kwargs)

    monkeypatch.setattr(case_cache, "case_rows", counted)
    cache = CaseRowCache()
    assert cache.rows(engine, run, POLICY) == cases.case_rows(engine, run_id, POLICY)
    assert cache.rows(engine, run, POLICY) == cases.case_rows(engine, run_id, POLICY)
    assert len(full) == 1  # nothing changed: nothing recomputed

    # Verdicts on two cases (one turning every flagged image negative, one unsure).
    flagged = [r for r in cases.case_rows(engine, run_id, POLICY) if r.flagged]
    with engine.connect() as conn:
        shas = {
            r.case_id: conn.scalars(select(Image.sha256).where(Image.case_id == r.case_id)).all()
            for r in flagged[:2]
        }
    first, second = shas.values()
    record_verdicts(
        engine,
        run,
        [VerdictInput(s, "Benign", "alice") for s in first]
        + [VerdictInput(second[0], "unsure", "bob")],
    )
    assert cache.rows(engine, run, POLICY) == cases.case_rows(engine, run_id, POLICY)
    assert len(full) == 1  # recounted case by case
    record_verdicts(engine, run, [VerdictInput(s, "Pro", "carol") for s in first[:3]])
    assert cache.rows(engine, run, POLICY) == cases.case_rows(engine, run_id, POLICY)
    assert len(full) == 1

    # Another policy in force recomputes the run.
    stricter = ScreeningPolicy(("Benign",), 0.99, 0.9, 2)
    set_policy(engine, run_id, stricter, source="test", labels=list(LABELS))
    assert cache.rows(engine, run, stricter) == cases.case_rows(engine, run_id, stricter)
    assert len(full) == 2

    # Counted at start (as `allscreen serve` does in a thread), a run's first page counts nothing.
    fresh = CaseRowCache()
    assert warm(engine, fresh) == 1
    assert len(full) == 3
    assert fresh.rows(engine, run, stricter) == cases.case_rows(engine, run_id, stricter)
    assert len(full) == 3


def _pending(engine: Engine, run_id: int, n: int) -> list[int]:
    """Take the results of `n` images spread over the run's cases away: they are pending."""
    with engine.begin() as conn:
        ids = list(conn.scalars(select(Image.id).where(Image.run_id == run_id).order_by(Image.id)))[
            :: 240 // n
        ][:n]
        conn.execute(delete(Result).where(Result.image_id.in_(ids)))
    return ids


def _arrive(engine: Engine, run_id: int, ids: list[int], status: str) -> None:
    now = datetime.now(UTC)
    upsert_results(
        engine,
        [
            ResultRow(
                run_id, i, status, "t", now, "Pro", 0.97, json.dumps({"Benign": 0.01, "Pro": 0.97})
            )
            if status == STATUS_DONE
            else ResultRow(run_id, i, status, "t", now, error="unreadable")
            for i in ids
        ],
    )


def test_kept_case_rows_follow_new_results_case_by_case_and_changes_in_place_in_full(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, run = _run(engine)
    waiting = _pending(engine, run_id, 24)
    full: list[int] = []
    partial: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> list[cases.CaseRow]:
        (full if kwargs.get("case_ids") is None else partial).append(1)
        return cases.case_rows(*args, **kwargs)

    monkeypatch.setattr(case_cache, "case_rows", counted)
    cache = CaseRowCache()
    first = cache.rows(engine, run, POLICY)
    assert first == cases.case_rows(engine, run_id, POLICY)
    assert sum(r.pending for r in first) == 24

    _arrive(engine, run_id, waiting[:10], STATUS_DONE)  # results arrive
    _arrive(engine, run_id, waiting[10:14], STATUS_FAILED)
    kept = cache.rows(engine, run, POLICY)
    assert kept == cases.case_rows(engine, run_id, POLICY)
    assert sum(r.pending for r in kept) == 10 and sum(r.failed for r in kept) == 4
    assert (len(full), len(partial)) == (1, 1)  # only the cases of the new rows recounted

    _arrive(engine, run_id, waiting[10:11], STATUS_DONE)  # a failure retried: changed in place
    kept = cache.rows(engine, run, POLICY)
    assert kept == cases.case_rows(engine, run_id, POLICY)
    assert sum(r.failed for r in kept) == 3
    assert len(full) == 2


def test_case_rows_fold_the_image_calls_of_each_case(engine: Engine) -> None:
    """`case_rows` counts in three reads what `image_calls` gives image by image."""
    run_id, run = _run(engine)
    waiting = _pending(engine, run_id, 24)
    _arrive(engine, run_id, waiting[:6], STATUS_FAILED)
    with engine.connect() as conn:
        shas = conn.scalars(
            select(Image.sha256).where(Image.run_id == run_id).order_by(Image.id)
        ).all()
    record_verdicts(
        engine,
        run,
        [VerdictInput(s, "Benign", "alice") for s in shas[::7]]
        + [VerdictInput(s, "unsure", "bob") for s in shas[3::11]]
        + [VerdictInput(s, "Pre", "carol") for s in shas[5::13]],
    )
    with engine.connect() as conn:
        per_image = conn.execute(image_calls(engine, run_id, POLICY)).all()
        stored = dict(conn.execute(select(Result.image_id, Result.scores)).all())
    for r in per_image:  # the SQL calls are the policy's rule on the stored scores
        if r.status == STATUS_DONE:
            scores = json.loads(stored[r.image_id] or "{}")
            negative = sum(scores.get(x, 0.0) for x in POLICY.negative_labels)
            assert r.model_call == POLICY.call(negative, r.label, r.confidence)
            assert r.positive_score == pytest.approx(1.0 - negative)
    expected = {}
    for case_id in {r.case_id for r in per_image}:
        mine = [r for r in per_image if r.case_id == case_id]
        flagged = [r for r in mine if r.model_call in (CALL_POSITIVE, CALL_REVIEW)]
        scores = [r.positive_score for r in mine if r.positive_score is not None]
        expected[case_id] = (
            len(mine),
            sum(r.final_call == CALL_POSITIVE for r in mine),
            sum(r.final_call == CALL_REVIEW for r in mine),
            sum(r.final_call == CALL_NEGATIVE for r in mine),
            sum(r.status == STATUS_FAILED for r in mine),
            sum(r.status is None for r in mine),
            len(flagged),
            sum(r.verdict is not None for r in flagged),
            pytest.approx(max(scores)) if scores else None,
        )
    got = {
        r.case_id: (
            r.images,
            r.positive,
            r.review,
            r.negative,
            r.failed,
            r.pending,
            r.flagged,
            r.flagged_reviewed,
            r.max_positive_score,
        )
        for r in cases.case_rows(engine, run_id, POLICY)
    }
    assert got == expected
    assert sum(v[7] for v in expected.values()) > 0  # some flagged images were reviewed
