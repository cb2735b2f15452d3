"""A run's pending images (registered, no result yet), read in id order a page at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, exists, func, select

from allscreen.schema import Image, Result

#: (id, sha256, stored location, size in bytes, stored path) of a pending image
PendingRow = tuple[int, str, bytes, int, str]

_PAGE = 1000  #: pending rows read per query (keyset pagination keeps each query cheap)


def _pending_conditions(run_id: int, *, only_new: bool, after: int) -> list[Any]:
    cond = [Image.run_id == run_id, Image.id > after]
    if only_new:
        cond.append(Image.enqueued_at.is_(None))
    return cond


def count_pending(engine: Engine, run_id: int, *, only_new: bool, after: int = 0) -> int:
    """How many images `pending_images` would yield."""
    with engine.connect() as conn:
        n = conn.scalar(
            select(func.count())
            .select_from(Image)
            .where(
                *_pending_conditions(run_id, only_new=only_new, after=after),
                ~exists().where(Result.run_id == run_id, Result.image_id == Image.id),
            )
        )
    return int(n or 0)


def pending_images(
    engine: Engine, run_id: int, *, only_new: bool, after: int = 0
) -> Iterator[tuple[int, str, bytes, int]]:
    """(id, sha256, location, size) of images with no result and an id above `after`, in order.

    With `only_new`, images already handed to the broker are left out: a second `submit` does
    not queue them twice. `resume` passes False to re-enqueue everything without a result.
    """
    for image_id, sha, location, size, _path in pending_rows(
        engine, run_id, only_new=only_new, after=after
    ):
        yield image_id, sha, location, size


def pending_rows(
    engine: Engine, run_id: int, *, only_new: bool, after: int = 0
) -> Iterator[PendingRow]:
    """`pending_images` with each image's stored path last (a hashed run's files are found
    by it, `producer.stored_paths`)."""
    last = after
    while True:
        # Page over the run's images by id first, then drop those with a result: the planner
        # can stop at the page size, where a LEFT JOIN ... IS NULL read everything pending.
        cond = _pending_conditions(run_id, only_new=only_new, after=last)
        with engine.connect() as conn:
            ids = (
                conn.execute(select(Image.id).where(*cond).order_by(Image.id).limit(_PAGE))
                .scalars()
                .all()
            )
            if not ids:
                return
            page = conn.execute(
                select(Image.id, Image.sha256, Image.location, Image.size_bytes, Image.path)
                .where(
                    Image.id.in_(ids),
                    ~exists().where(Result.run_id == run_id, Result.image_id == Image.id),
                )
                .order_by(Image.id)
            ).all()
        for image_id, sha, location, size, path in page:
            yield int(image_id), str(sha), bytes(location), int(size), str(path)
        last = int(ids[-1])
