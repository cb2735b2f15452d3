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
