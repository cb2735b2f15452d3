"""Worker-side bookkeeping: counting deliveries and skipping images already done."""

from __future__ import annotations

from sqlalchemy import Engine, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import BigInteger

from allscreen.schema import STATUS_DONE, Image, Result

# PostgreSQL: one statement, one round trip, run in autocommit (a single statement is atomic):
# no BEGIN or COMMIT of its own, which on a device 20 ms from the database cost 40 ms a batch.
# The status is read per counted image through the (run_id, image_id) key, never by filtering
# on status: with status in the WHERE clause the planner may pick the (run_id, status) index
# and read every done row of the run (BENCHMARKS.md, section 4).
_BEGIN_PG = text(
    "WITH counted AS ("
    " UPDATE images SET deliveries = deliveries + 1 WHERE id = ANY(:ids)"
    " RETURNING id, deliveries"
    ") SELECT counted.id, counted.deliveries, ("
    " SELECT results.status FROM results"
    " WHERE results.run_id = :run_id AND results.image_id = counted.id"
    ") FROM counted"
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


def begin_batch(
    engine: Engine, run_id: int, image_ids: list[int]
) -> tuple[set[int], dict[int, int]]:
    """Count this delivery per image; return the ids already done and each delivery count."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            rows = conn.execute(_BEGIN_PG, {"ids": image_ids, "run_id": run_id}).all()
        done = {int(i) for i, _, status in rows if status == STATUS_DONE}
        return done, {int(i): int(n) for i, n, _ in rows}
    # SQLite has no UPDATE inside WITH; it is local, so its two statements cost no network.
    with engine.begin() as conn:
        counted = conn.execute(
            update(Image)
            .where(Image.id.in_(image_ids))
            .values(deliveries=Image.deliveries + 1)
            .returning(Image.id, Image.deliveries)
        ).all()
        existing = conn.execute(
            select(Result.image_id, Result.status).where(
                Result.run_id == run_id, Result.image_id.in_(image_ids)
            )
        ).all()
    done = {int(i) for i, status in existing if status == STATUS_DONE}
    return done, {int(i): int(n) for i, n in counted}


def attempts_alone(engine: Engine, image_ids: list[int]) -> dict[int, int]:
    """Each image's deaths in flight while classified alone (`worker.suspects`)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Image.id, Image.attempts_alone).where(Image.id.in_(image_ids))
        ).all()
    return {int(i): int(n) for i, n in rows}


def note_attempt_alone(engine: Engine, image_id: int) -> None:
    """Count that a worker begins classifying this image alone, before it does (committed)."""
    with engine.begin() as conn:
        conn.execute(
            update(Image)
            .where(Image.id == image_id)
            .values(attempts_alone=Image.attempts_alone + 1)
        )
