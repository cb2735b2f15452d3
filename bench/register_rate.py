"""(4c) Scan and register, in-process: the production insert against a baseline.

`producer.register.register` over a synthetic archive into a fresh database, as `submit` runs
it, and the same with only its chunk insert swapped for the baseline: the same `INSERT ... ON
CONFLICT DO NOTHING` sent as `executemany`, without `RETURNING id`. Production returns the ids
it added so that producers registering one run at once each count only their own new rows;
the ratio says what that costs. Alternated in each repeat, so the ratio is measured under the
same load. Run:
    .venv/bin/python -m bench.register_rate [--files 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

import producer.register as reg
from allscreen.db import dialect_insert, ensure_schema, make_engine
from allscreen.schema import Image
from bench.common import machine, median
from bench.large_archive import write_folder
from bench.result_writes import database
from producer.archive import scan
from producer.cases import CaseName

InsertChunk = Callable[
    [Engine, list[dict[str, object]], int, list[tuple[str, str]], list[CaseName | None]], int
]


def no_returning_insert(
    engine: Engine,
    rows: list[dict[str, object]],
    run_id: int,
    failures: list[tuple[str, str]],
    named: list[CaseName | None],
) -> int:
    """Baseline for `producer.register._insert` (no cases): the statement without RETURNING;
    its count of new rows is a guess (every row), as the benchmark's archive has no repeats."""
    added = len(rows)
    if rows:
        stmt = dialect_insert(engine, Image.__table__).on_conflict_do_nothing(
            index_elements=["run_id", "sha256"]
        )
        with engine.begin() as conn:
            conn.execute(stmt, rows)
        rows.clear()
        named.clear()
    if failures:
        reg.record_failures(engine, run_id, failures)
        failures.clear()
    return added


@contextmanager
def chunk_insert(insert: InsertChunk) -> Iterator[None]:
    """Run `register` with `insert` as its chunk insert, restoring the production one after."""
    original = reg._insert
    reg._insert = insert  # type: ignore[assignment]
    try:
        yield
    finally:
        reg._insert = original


def register_rate(folder: Path, kind: str, workdir: Path) -> tuple[float, float]:
    """(files/s, CPU µs per file) of one `register` of `folder` into a fresh database."""
    with database(kind, workdir) as url:
        engine = make_engine(url)
        try:
            ensure_schema(engine, create=True)
            run_id, _ = reg.get_or_create_run(engine, "register", pin=None)
            t0, c0 = time.perf_counter(), time.process_time()
            stats = reg.register(engine, run_id, scan([bytes(folder)], "none"))
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert stats.new == stats.files, stats
            return stats.files / seconds, cpu * 1e6 / stats.files
        finally:
            engine.dispose()


def main() -> None:
    """Print the median register rate of production and baseline, and their ratio."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--databases", nargs="+", default=["postgresql", "sqlite"])
    args = ap.parse_args()
    print(f"# scan+register in-process, {args.files:,} 8x8 PNGs; {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="allscreen-register-", dir="/tmp"))
    try:
        folder = tmp / "archive"
        write_folder(folder, range(args.files))
        print("| database | insert | median files/s | runs | CPU µs/file | ratio |")
        print("|---|---|---|---|---|---|")
        for kind in args.databases:
            got: dict[str, list[tuple[float, float]]] = {"no RETURNING": [], "production": []}
            for _ in range(args.repeats):
                with chunk_insert(no_returning_insert):
                    got["no RETURNING"].append(register_rate(folder, kind, tmp))
                got["production"].append(register_rate(folder, kind, tmp))
            ratios = [
                p[0] / b[0] for p, b in zip(got["production"], got["no RETURNING"], strict=True)
            ]
            for name, rs in got.items():
                ratio = f"{median(ratios):.2f}x" if name == "production" else "1"
                print(
                    f"| {kind} | {name} | {median([r for r, _ in rs]):.0f} | "
                    f"{' '.join(f'{r:.0f}' for r, _ in rs)} | "
                    f"{median([c for _, c in rs]):.0f} | {ratio} |"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
