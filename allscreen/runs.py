"""Finding a run and counting how far it has got: read by the producer and the read side."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from allscreen.errors import RunNotFound
from allscreen.schema import STATUS_DONE, STATUS_FAILED, Image, Result, Run


@dataclass(frozen=True, slots=True)
class Counts:
    """How far a run has got."""

    total: int
    done: int
    failed: int

    @property
    def pending(self) -> int:
        """Images with no result yet."""
        return self.total - self.done - self.failed

    @property
    def finished(self) -> bool:
        """Whether every image has a result."""
        return self.pending == 0


def find_run(engine: Engine, ref: str) -> Run:
    """The run named `ref` (or with numeric id `ref`)."""
    with Session(engine, expire_on_commit=False) as session:
        run = session.scalars(select(Run).where(Run.name == ref)).first()
        if run is None and ref.isdigit():
            run = session.get(Run, int(ref))
    if run is None:
        raise RunNotFound(f"no run named {ref!r}")
    return run


def counts(engine: Engine, run_id: int) -> Counts:
    """Total, done and failed images of a run."""
    with engine.connect() as conn:
        total = conn.scalar(select(func.count()).where(Image.run_id == run_id)) or 0
        done, failed = conn.execute(
            select(
                func.coalesce(func.sum(case((Result.status == STATUS_DONE, 1), else_=0)), 0),
                func.coalesce(func.sum(case((Result.status == STATUS_FAILED, 1), else_=0)), 0),
            ).where(Result.run_id == run_id)
        ).one()
    return Counts(int(total), int(done), int(failed))
