"""Claiming pending images before they are sent, so producers on one run never send one twice.

Several `submit` processes may feed one run at once (shards of one archive, or several
archives). Each reads the run's pending images, so without a claim two of them could send the
same image: twice the work on the devices, and a delivery counted twice. A claim is one
`UPDATE images SET enqueued_at = <now> WHERE id IN (...) AND <still claimable> RETURNING id`:
PostgreSQL re-checks the condition on a row another transaction has just claimed (and so
skips it), SQLite runs one writer at a time; either way each image goes to one producer.

An image is claimable while it has no result and either was never sent (`enqueued_at IS
NULL`) or, for a producer that re-sends what the broker lost (`resume`, or `submit` on an
idle broker with no other live producer), was stamped before that producer started
(`resend_before`). On PostgreSQL both the stamps and that start come from the server's clock,
so producers on machines with different clocks still compare correctly; SQLite lives on one
machine, so its clock is the producer's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, exists, func, or_, select, update

from allscreen.schema import Image, Result


def database_now(engine: Engine) -> datetime:
    """The time as the database stamps claims: the server's clock on PostgreSQL."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            now = conn.scalar(select(func.now()))
        assert isinstance(now, datetime)
        return now
    return datetime.now(UTC)


def _stamp(engine: Engine) -> Any:
    return func.now() if engine.dialect.name == "postgresql" else datetime.now(UTC)


def claim(
    engine: Engine, run_id: int, ids: Sequence[int], *, resend_before: datetime | None
) -> set[int]:
    """Claim the images `ids` of run `run_id` for sending; return those this call claimed.

    An image another producer claimed first, or one that has a result by now, is left out.
    With `resend_before`, an image stamped before that time is claimed again (its batch is
    taken to be lost); without it, only images never sent are.
    """
    if not ids:
        return set()
    unsent = Image.enqueued_at.is_(None)
    when = unsent if resend_before is None else or_(unsent, Image.enqueued_at < resend_before)
    stmt = (
        update(Image)
        .where(
            Image.run_id == run_id,
            Image.id.in_(list(ids)),
            when,
            ~exists().where(Result.run_id == run_id, Result.image_id == Image.id),
        )
        .values(enqueued_at=_stamp(engine))
        .returning(Image.id)
        .execution_options(synchronize_session=False)
    )
    with engine.begin() as conn:
        return {int(i) for i in conn.execute(stmt).scalars()}


def release(engine: Engine, run_id: int, ids: Sequence[int]) -> None:
    """Give back claimed images whose batch never reached the broker (the send failed or was
    interrupted), so the next `submit` sends them without waiting for a `resume`."""
    if not ids:
        return
    with engine.begin() as conn:
        conn.execute(
            update(Image)
            .where(Image.run_id == run_id, Image.id.in_(list(ids)))
            .values(enqueued_at=None)
        )
