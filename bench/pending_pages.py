"""(4d) The enqueue loop's page query as the archive grows: production against a candidate.

`producer.pending.pending_images` reads the run's pending images 1000 at a time (keyset on
`images.id`). This replays its access pattern on a fresh PostgreSQL database without Redis or
workers: after each page, the page's images are marked enqueued in batches of 32 (as `enqueue`
does), their deliveries counted (as a worker's `begin_batch` does) and their results written,
so each page query sees what it would see in a run whose workers keep up. It times every page
query of the production generator and of a candidate that first takes the next 1000 images
by id and only then drops those with a result (`NOT EXISTS`). Run:
    .venv/bin/python -m bench.pending_pages [--sizes 50000 200000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, exists, select, update

from allscreen.db import ensure_schema, make_engine
from allscreen.schema import Image, Result
from bench.common import machine, median
from bench.result_writes import database, prebuilt_upsert, result_rows, seed_images
from producer.pending import pending_images

PAGE = 1000  #: rows per page, as producer.enqueue._PAGE
BATCH = 32  #: images per batch

Pages = Callable[[Engine, int], Iterator[tuple[int, str, bytes, int]]]


def production(engine: Engine, run_id: int) -> Iterator[tuple[int, str, bytes, int]]:
    """The producer's own generator (only_new, as a first `submit` uses it)."""
    return pending_images(engine, run_id, only_new=True)


def page_first(engine: Engine, run_id: int) -> Iterator[tuple[int, str, bytes, int]]:
    """Candidate: the next PAGE images by id (an index range scan that stops at PAGE rows),
    then only those without a result; the keyset advances past the whole page."""
    last = 0
    while True:
        page = (
            select(Image.id, Image.sha256, Image.location, Image.size_bytes, Image.run_id)
            .where(Image.run_id == run_id, Image.id > last, Image.enqueued_at.is_(None))
            .order_by(Image.id)
            .limit(PAGE)
            .subquery()
        )
        stmt = (
            select(page.c.id, page.c.sha256, page.c.location, page.c.size_bytes)
            .where(~exists().where(Result.run_id == page.c.run_id, Result.image_id == page.c.id))
            .order_by(page.c.id)
        )
        bounds = select(page.c.id).order_by(page.c.id.desc()).limit(1)
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
            top = conn.scalar(bounds)
        if top is None:
            return
        for image_id, sha, location, size in rows:
            yield int(image_id), str(sha), bytes(location), int(size)
        last = int(top)


def replay(kind: Pages, n: int, workdir: Path) -> list[float]:
    """Seconds of every page query over an archive of `n` images (fresh database)."""
    with database("postgresql", workdir) as url:
        engine = make_engine(url)
        try:
            ensure_schema(engine, create=True)
            run_id, ids = seed_images(engine, n, "pages")
            rows = {r.image_id: r for r in result_rows(run_id, ids)}
            write = prebuilt_upsert(engine)
            times: list[float] = []
            pages = kind(engine, run_id)
            while True:
                t0 = time.perf_counter()
                got = [next(pages, None) for _ in range(PAGE)]
                times.append(time.perf_counter() - t0)
                page = [g[0] for g in got if g is not None]
                if not page:
                    break
                for start in range(0, len(page), BATCH):
                    chunk = page[start : start + BATCH]
                    with engine.begin() as conn:
                        conn.execute(
                            update(Image)
                            .where(Image.id.in_(chunk))
                            .values(enqueued_at=datetime.now(UTC))
                        )
                    with engine.begin() as conn:
                        conn.execute(
                            update(Image)
                            .where(Image.id.in_(chunk))
                            .values(deliveries=Image.deliveries + 1)
                        )
                    write([rows[i] for i in chunk])
            return times
        finally:
            engine.dispose()


def main() -> None:
    """Print, per size and query, total page-query time and ms per page (start, end)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    args = ap.parse_args()
    print(f"# enqueue page queries, PostgreSQL, pages of {PAGE}; {machine()}")
    print(
        "| images | query | pages | total s | median ms/page | first 10% ms/page | "
        "last 10% ms/page |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="allscreen-pages-") as tmp:
        for n in args.sizes:
            for name, kind in (("production", production), ("page-first", page_first)):
                t = replay(kind, n, Path(tmp))
                k = max(len(t) // 10, 1)
                print(
                    f"| {n:,} | {name} | {len(t)} | {sum(t):.1f} | {1000 * median(t):.1f} | "
                    f"{1000 * median(t[:k]):.1f} | {1000 * median(t[-k:]):.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
