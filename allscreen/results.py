"""Result rows and their one write path: an upsert keyed by (run, image), never a duplicate."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

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


_KEYS = ("run_id", "image_id")
_COLUMNS = tuple(f.name for f in fields(ResultRow))
_UPSERTS: dict[str, Any] = {}


def _upsert_statement(engine: Engine) -> Any:
    # One statement per dialect, executed with many parameter sets: SQLAlchemy compiles it once
    # and sends the rows as multi-row VALUES ("insertmanyvalues"), not a round trip per row.
    name = engine.dialect.name
    if name not in _UPSERTS:
        table = Result.__table__
        stmt = dialect_insert(engine, table)
        _UPSERTS[name] = stmt.on_conflict_do_update(
            index_elements=list(_KEYS),
            set_={c: stmt.excluded[c] for c in _COLUMNS if c not in _KEYS},
            where=table.c.status != STATUS_DONE,
        )
    return _UPSERTS[name]


def upsert_results(engine: Engine, rows: list[ResultRow]) -> None:
    """Write `rows` in one transaction. A `done` row is never replaced by a later failure."""
    if not rows:
        return
    with engine.begin() as conn:
        # Flat rows: getattr per column, not asdict (which deep-copies every value).
        params = [{c: getattr(r, c) for c in _COLUMNS} for r in rows]
        conn.execute(_upsert_statement(engine), params)
