"""Refusals: a device that holds another model than a run's pin leaves the run's batches alone.

The worker records each refusal (one row per run, device and model, counting batches), so
`status` can say which device refused which run, and why, instead of the run only stalling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from allscreen.db import dialect_insert
from allscreen.schema import Refusal


@dataclass(frozen=True, slots=True)
class RefusalInfo:
    """One device's refusals of one run."""

    device: str
    model_sha256: str
    model_file: str
    batches: int
    first_at: datetime
    last_at: datetime


def record_refusal(
    engine: Engine, run_id: int, *, device: str, model_sha256: str, model_file: str
) -> None:
    """Count one refused batch of `run_id` by `device` holding model `model_sha256`."""
    now = datetime.now(UTC)
    table = Refusal.__table__
    stmt = dialect_insert(engine, table).values(
        run_id=run_id,
        device=device,
        model_sha256=model_sha256,
        model_file=model_file,
        batches=1,
        first_at=now,
        last_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["run_id", "device", "model_sha256"],
        set_={
            "batches": table.c.batches + 1,
            "last_at": stmt.excluded.last_at,
            "model_file": stmt.excluded.model_file,
        },
    )
    with engine.begin() as conn:
        conn.execute(stmt)


def refusals_of_run(engine: Engine, run_id: int) -> list[RefusalInfo]:
    """Every device that refused batches of `run_id`, by device name."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Refusal.device,
                Refusal.model_sha256,
                Refusal.model_file,
                Refusal.batches,
                Refusal.first_at,
                Refusal.last_at,
            )
            .where(Refusal.run_id == run_id)
            .order_by(Refusal.device, Refusal.model_sha256)
        ).all()
    return [RefusalInfo(*row) for row in rows]
