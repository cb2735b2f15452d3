"""Screening calls computed in SQL at read time, from stored scores and the policy in force.

Nothing here is stored: the same results read under another policy give other calls, so a
policy can change after a run without classifying anything again. The expressions work on
SQLite (`json_extract`) and PostgreSQL (`->>` on `json`), and aggregate in the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Float, Select, and_, case, cast, func, literal, null, select
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.sql.elements import ColumnElement

from allscreen.policy import (
    CALL_NEGATIVE,
    CALL_POSITIVE,
    CALL_REVIEW,
    UNSURE,
    ScreeningPolicy,
)
from allscreen.schema import STATUS_DONE, Image, Result, Verdict


def score_of(engine: Engine, label: str) -> ColumnElement[Any]:
    """One label's stored score (NULL where the image has none).

    PostgreSQL reads the text as `json`, not `jsonb`: `->>` on `json` scans the text for the
    key, where a cast to `jsonb` first builds the whole document (1.7 times slower over
    200,000 four-label rows on this machine).
    """
    if engine.dialect.name == "postgresql":
        return cast(cast(Result.scores, JSON)[label].astext, Float)
    return cast(func.json_extract(Result.scores, f'$."{label}"'), Float)


def negative_score(engine: Engine, policy: ScreeningPolicy) -> ColumnElement[Any]:
    """The summed score of the policy's negative labels."""
    parts = [func.coalesce(score_of(engine, x), 0.0) for x in policy.negative_labels]
    total: ColumnElement[Any] = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def row_negative_score(engine: Engine, policy: ScreeningPolicy) -> ColumnElement[Any]:
    """A done row's negative score, reading its JSON only where the columns cannot tell.

    With one negative label, a row whose top label is that label has it as its confidence
    (the worker stores the top score as `confidence`), so only the other rows, a few per cent
    in a screening archive, parse their scores (see `readout.cases.case_rows` for what that
    saves)."""
    parsed = negative_score(engine, policy)
    if len(policy.negative_labels) != 1:
        return parsed
    return case((Result.label == policy.negative_labels[0], Result.confidence), else_=parsed)


def model_call(
    policy: ScreeningPolicy,
    *,
    status: ColumnElement[Any],
    label: ColumnElement[Any],
    confidence: ColumnElement[Any],
    negative: ColumnElement[Any],
) -> ColumnElement[Any]:
    """The model's call for a classified row (NULL otherwise): `ScreeningPolicy.call` in SQL.

    Written so each input is read once: below the confidence bar an image is in review;
    above it, a negative score at the threshold makes it negative, and otherwise its top label
    decides between positive and review.
    """
    return case(
        (status.is_(None), null()),
        (status != STATUS_DONE, null()),
        (func.coalesce(confidence, 0.0) < policy.min_confidence, literal(CALL_REVIEW)),
        (negative >= policy.min_negative_score, literal(CALL_NEGATIVE)),
        (label.in_(policy.negative_labels), literal(CALL_REVIEW)),
        else_=literal(CALL_POSITIVE),
    )


def final_call(
    policy: ScreeningPolicy, call: ColumnElement[Any], verdict: ColumnElement[Any]
) -> ColumnElement[Any]:
    """The reviewer's call where there is a verdict, else the model's."""
    return case(
        (verdict.is_(None), call),
        (verdict == UNSURE, literal(CALL_REVIEW)),
        (verdict.in_(policy.negative_labels), literal(CALL_NEGATIVE)),
        else_=literal(CALL_POSITIVE),
    )


def latest_verdicts(run_id: int) -> Any:
    """A subquery: each reviewed image's newest verdict (label, reviewer, when, note)."""
    newest = (
        select(func.max(Verdict.id).label("id"))
        .where(Verdict.run_id == run_id)
        .group_by(Verdict.image_id)
        .subquery()
    )
    return (
        select(
            Verdict.image_id,
            Verdict.label,
            Verdict.reviewer,
            Verdict.created_at,
            Verdict.note,
            Verdict.model_label,
        )
        .join(newest, newest.c.id == Verdict.id)
        .subquery("latest_verdict")
    )


def image_calls(
    engine: Engine,
    run_id: int,
    policy: ScreeningPolicy | None,
    *,
    case_id: int | None = None,
    image_ids: Sequence[int] | None = None,
    reviewed_only: bool = False,
) -> Select[Any]:
    """One row per image of the run (or of one case, or the given images, or only the images
    with a verdict): calls and scores.

    Columns: image_id, case_id, status (NULL while pending), label, confidence,
    positive_score (1 - negative score), model_call, final_call, verdict, reviewer.
    Without a policy the calls are NULL and the labels stand alone. Filter by case or images
    here rather than on the result: the fence below keeps outer filters from reaching the rows.

    The scores' JSON is parsed once per row, in an inner query fenced with `OFFSET 0` so
    that neither SQLite nor PostgreSQL inlines it into each use of the calls (which would
    parse the JSON once per reference: several times per row).
    """
    v = latest_verdicts(run_id)
    negative: ColumnElement[Any] = cast(null(), Float)
    if policy is not None:
        negative = case(
            (Result.status == STATUS_DONE, row_negative_score(engine, policy)), else_=null()
        )
    scored = (
        select(
            Image.id.label("image_id"),
            Image.case_id,
            Result.status,
            Result.label,
            Result.confidence,
            negative.label("negative"),
            v.c.label.label("verdict"),
            v.c.reviewer.label("reviewer"),
        )
        .select_from(Image)
        .outerjoin(Result, and_(Result.run_id == Image.run_id, Result.image_id == Image.id))
        .join(v, v.c.image_id == Image.id, isouter=not reviewed_only)
        .where(Image.run_id == run_id, *_only(case_id, image_ids))
        .offset(0)
        .subquery("scored")
    )
    s = scored.c
    if policy is None:
        call: ColumnElement[Any] = null()
        final: ColumnElement[Any] = null()
    else:
        call = model_call(
            policy, status=s.status, label=s.label, confidence=s.confidence, negative=s.negative
        )
        final = final_call(policy, call, s.verdict)
    return select(
        s.image_id,
        s.case_id,
        s.status,
        s.label,
        s.confidence,
        (1.0 - s.negative).label("positive_score"),
        call.label("model_call"),
        final.label("final_call"),
        s.verdict,
        s.reviewer,
    )


def _only(case_id: int | None, image_ids: Sequence[int] | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if case_id is not None:
        where.append(Image.case_id == case_id)
    if image_ids is not None:
        where.append(Image.id.in_(list(image_ids)))
    return where


@dataclass(frozen=True, slots=True)
class CallCounts:
    """Images per final call, how many were reviewed, and how often reviewers agreed."""

    positive: int
    review: int
    negative: int
    reviewed: int
    agreed_label: int  #: reviewed images whose verdict is the model's label
    decided: int  #: reviewed images whose verdict is a label (not `unsure`)
    changed_call: int  #: reviewed images whose final call differs from the model's


def call_counts(engine: Engine, run_id: int, policy: ScreeningPolicy | None) -> CallCounts:
    """Counts of final calls and of reviews, aggregated in the database."""
    sub = image_calls(engine, run_id, policy).subquery()

    def n(cond: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    decided = and_(sub.c.verdict.is_not(None), sub.c.verdict != UNSURE)
    with engine.connect() as conn:
        row = conn.execute(
            select(
                n(sub.c.final_call == CALL_POSITIVE),
                n(sub.c.final_call == CALL_REVIEW),
                n(sub.c.final_call == CALL_NEGATIVE),
                n(sub.c.verdict.is_not(None)),
                n(and_(decided, sub.c.verdict == sub.c.label)),
                n(decided),
                n(and_(sub.c.verdict.is_not(None), sub.c.final_call != sub.c.model_call)),
            )
        ).one()
    return CallCounts(*(int(x) for x in row))
