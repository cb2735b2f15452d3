"""The models workers have run: identity, labels and the operating points their `hello` carries.

Workers record a model once per process (an insert that ignores a row already there); the read
side takes a run's default screening policy and its label set from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from allscreen.db import dialect_insert
from allscreen.schema import LabelTally, ModelRecord

_recorded: set[tuple[str, str]] = set()  #: (database URL, sha256) this process has recorded


@dataclass(frozen=True, slots=True)
class SeenModel:
    """A model as recorded: its labels in order, and its hello thresholds (parsed JSON)."""

    sha256: str
    name: str | None
    version: str | None
    labels: tuple[str, ...]
    thresholds: object


def record_model(
    engine: Engine,
    *,
    sha256: str,
    name: str,
    version: str,
    labels: tuple[str, ...],
    thresholds: str,
) -> None:
    """Record a model the first time this process writes its results (idempotent)."""
    key = (str(engine.url), sha256)
    if key in _recorded:
        return
    stmt = (
        dialect_insert(engine, ModelRecord.__table__)
        .values(
            sha256=sha256,
            name=name,
            version=version,
            labels=json.dumps(list(labels)),
            thresholds=thresholds,
            first_seen=datetime.now(UTC),
        )
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    with engine.begin() as conn:
        conn.execute(stmt)
    _recorded.add(key)


def model_of_run(engine: Engine, run_id: int, pin: str | None = None) -> SeenModel | None:
    """The run's model: the pinned one, else the one behind most of its done results."""
    with engine.connect() as conn:
        # The write-time tallies count done results per model (allscreen/tallies.py); '' is
        # a result without a model hash.
        sha = pin or conn.scalar(
            select(LabelTally.model_sha256)
            .where(LabelTally.run_id == run_id)
            .group_by(LabelTally.model_sha256)
            .having(func.sum(LabelTally.n) > 0)
            .order_by(func.sum(LabelTally.n).desc())
            .limit(1)
        )
        sha = sha or None
        if sha is None:
            return None
        row = conn.execute(select(ModelRecord).where(ModelRecord.sha256 == sha)).first()
    if row is None:
        return None
    return SeenModel(
        row.sha256, row.name, row.version, tuple(json.loads(row.labels)), json.loads(row.thresholds)
    )
