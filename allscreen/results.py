"""Result rows and their one write path: an upsert keyed by (run, image), never a duplicate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Engine

from allscreen.db import dialect_insert
from allscreen.schema import STATUS_DONE, Result


@dataclass(slots=True)
class ResultRow:
    """One row of `results`, as the worker produces it."""

    run_id: int
    image_id: int
    status: str
    device: str
    finished_at: datetime
    label: str | None = None
    confidence: float | None = None
    scores: str | None = None
    model_sha256: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    decode_ms: float | None = None
    inference_ms: float | None = None
    attempts: int = 1
    error: str | None = None


def upsert_results(engine: Engine, rows: list[ResultRow]) -> None:
    """Write `rows` in one statement. A `done` row is never replaced by a later failure."""
    if not rows:
        return
    table = Result.__table__
    stmt = dialect_insert(engine, table).values([asdict(r) for r in rows])
    keys = ("run_id", "image_id")
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: stmt.excluded[c] for c in asdict(rows[0]) if c not in keys},
        where=table.c.status != STATUS_DONE,
    )
    with engine.begin() as conn:
        conn.execute(stmt)
