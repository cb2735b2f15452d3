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
        done = conn.scalars(
            select(Result.image_id).where(
                Result.run_id == run_id,
                Result.image_id.in_(image_ids),
                Result.status == STATUS_DONE,
            )
        ).all()
    return set(done), {int(i): int(n) for i, n in counted}
