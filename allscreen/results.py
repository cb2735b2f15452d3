"""Result rows and their one write path: an upsert keyed by (run, image), never a duplicate."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.sql.elements import TextClause

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


def _unnest_statement(engine: Engine) -> TextClause:
    # PostgreSQL: the whole batch as one statement over column arrays. psycopg sends an
    # executemany as one statement per row, and each would fire the tally triggers
    # (allscreen/tally_sql.py) on its own: 0.27 ms a row, against about 0.05 ms for the batch.
    key = "postgresql-unnest"
    if key not in _UPSERTS:
        table = Result.__table__
        cols = ", ".join(_COLUMNS)
        arrays = ", ".join(
            f"CAST(:{c} AS {table.c[c].type.compile(dialect=engine.dialect)}[])" for c in _COLUMNS
        )
        sets = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in _KEYS)
        _UPSERTS[key] = text(
            f"INSERT INTO results ({cols}) SELECT * FROM unnest({arrays}) AS t({cols}) "
            f"ON CONFLICT ({', '.join(_KEYS)}) DO UPDATE SET {sets} "
            f"WHERE results.status <> '{STATUS_DONE}'"
        )
    return _UPSERTS[key]  # type: ignore[no-any-return]


def _one_per_image(rows: list[ResultRow]) -> list[ResultRow]:
    """The rows one statement may write: the last row per image, unless an earlier is `done`
    (what writing them one after another would leave; PostgreSQL refuses to upsert one key
    twice in a statement)."""
    kept: dict[tuple[int, int], ResultRow] = {}
    for r in rows:
        key = (r.run_id, r.image_id)
        if key not in kept or kept[key].status != STATUS_DONE:
            kept[key] = r
    return list(kept.values())


def upsert_results(engine: Engine, rows: list[ResultRow]) -> None:
    """Write `rows` in one transaction. A `done` row is never replaced by a later failure."""
    if not rows:
        return
    if engine.dialect.name == "postgresql":
        # One statement is atomic on its own: in autocommit it costs one round trip, not the
        # three of BEGIN, the statement and COMMIT (a device 20 ms from the database, 40 ms).
        batch = _one_per_image(rows)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(
                _unnest_statement(engine), {c: [getattr(r, c) for r in batch] for c in _COLUMNS}
            )
        return
    with engine.begin() as conn:
        # Flat rows: getattr per column, not asdict (which deep-copies every value).
        params = [{c: getattr(r, c) for c in _COLUMNS} for r in rows]
        conn.execute(_upsert_statement(engine), params)
