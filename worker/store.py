"""Worker-side bookkeeping: counting deliveries and skipping images already done."""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from allscreen.schema import STATUS_DONE, Image, Result


def begin_batch(
    engine: Engine, run_id: int, image_ids: list[int]
) -> tuple[set[int], dict[int, int]]:
    """Count this delivery per image; return the ids already done and each delivery count."""
    with engine.begin() as conn:
        counted = conn.execute(
            update(Image)
            .where(Image.id.in_(image_ids))
            .values(deliveries=Image.deliveries + 1)
            .returning(Image.id, Image.deliveries)
        ).all()
        # Status is filtered here, not in SQL: with it in the WHERE clause the planner may pick
        # the (run_id, status) index and read every done row of the run (BENCHMARKS.md, section 4).
        existing = conn.execute(
            select(Result.image_id, Result.status).where(
                Result.run_id == run_id, Result.image_id.in_(image_ids)
            )
        ).all()
    done = {int(i) for i, status in existing if status == STATUS_DONE}
    return done, {int(i): int(n) for i, n in counted}
