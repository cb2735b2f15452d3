"""The review page's kept case rows always equal a fresh `case_rows`, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from allscreen.policy import ScreeningPolicy
from allscreen.policy_store import set_policy
from allscreen.schema import Image, Run
from bench.review_worklist import LABELS, POLICY, build_run
from readout import cases
from readout.verdicts import VerdictInput, record_verdicts
from reviewweb import case_cache
from reviewweb.case_cache import CaseRowCache, warm


def test_kept_case_rows_follow_verdicts_case_by_case_and_a_new_policy_in_full(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = build_run(engine, images=240, cases=8)
    with Session(engine, expire_on_commit=False) as session:
        run = session.get(Run, run_id)
    assert run is not None
    full: list[int] = []

    def counted(*args: Any) -> list[cases.CaseRow]:
        full.append(1)
        return cases.case_rows(*args)

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
