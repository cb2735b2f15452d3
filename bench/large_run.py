"""(17.7) Reading a run at archive scale: `status`, `report --html` and one metrics scrape of a
run of N images, on SQLite and PostgreSQL, as subprocesses timed by `/usr/bin/time`.

The run is built with SQL (8 devices, 1,000 failures, 4 classes, a scores JSON per image,
ground truth from the folder label), its tallies kept by the triggers as the rows go in.
Each command is run R times; the script prints medians of wall seconds and peak RSS (MB),
the same figures for a same-run baseline (`python -m allscreen --help`: interpreter and
imports), and, with two sizes, each command's ratio of the larger to the smaller (flat is
1.0). The run has no screening policy: the screening reads are not measured here.

    .venv/bin/python -m bench.large_run                    # 1,000,000 and 5,000,000 images
    .venv/bin/python -m bench.large_run --sizes 100000 --repeats 3 --dialects sqlite
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, text

from allscreen.db import ensure_schema, make_engine
from bench.common import median
from bench.result_writes import postgres_database, sqlite_database

DEVICES = 8
FAILURES = 1000
CLASSES = ("Benign", "Early", "Pre", "Pro")
PER_SECOND = 100  #: results finished per second across the fleet (a 1M run lasts ~2.8 h)
#: An exporter's scrape: the collector built once (as `allscreen metrics` does; its cache
#: off), one warm-up collect, then the median of 5 collects printed in ms. A scrape is a
#: collect in a running exporter, so the interpreter's start-up is not part of it; the
#: process's peak RSS is.
SCRAPE = (
    "import redis,time,statistics;from allscreen.settings import get_settings;"
    "from allscreen.db import open_engine;from readout.metrics import FleetCollector;"
    "s=get_settings();c=FleetCollector(open_engine(s,create=False),"
    "redis.Redis.from_url(s.effective_broker_url),s.queue,cache_seconds=0);list(c.collect());t=[]\n"
    "for _ in range(5):\n t0=time.perf_counter();list(c.collect());"
    "t.append(time.perf_counter()-t0)\n"
    "print(f'scrape-ms {statistics.median(t)*1000:.1f}')"
)


def _build_pg(c: Connection, n: int) -> None:
    classes = "ARRAY['" + "','".join(CLASSES) + "']"
    c.execute(
        text(
            "INSERT INTO runs (id, name, created_at, path_mode) "
            "VALUES (1, 'big', now(), 'absolute')"
        )
    )
    c.execute(
        text(
            "INSERT INTO images (run_id, sha256, path, location, size_bytes, ground_truth, "
            "deliveries, attempts_alone) SELECT 1, lpad(to_hex(g), 64, '0'), "
            f"({classes})[1 + g % 4] || '/' || g || '.jpg', convert_to('/a/' || g, 'UTF8'), "
            f"50000, ({classes})[1 + g % 4], 1, 0 FROM generate_series(1, :n) g"
        ),
        {"n": n},
    )
    c.execute(
        text(
            "INSERT INTO results (run_id, image_id, status, label, confidence, scores, "
            "model_sha256, model_name, model_version, device, queued_at, started_at, "
            "finished_at, decode_ms, inference_ms, attempts, error) "
            "SELECT 1, i.id, CASE WHEN i.id % (:n / :f) = 0 THEN 'failed' ELSE 'done' END, "
            f"CASE WHEN i.id % (:n / :f) = 0 THEN NULL ELSE ({classes})[1 + (i.id * 7) % 4] END, "
            "0.9, "
            '\'{"Benign": 0.03, "Early": 0.04, "Pre": 0.9, "Pro": 0.03}\', '
            "repeat('ab', 32), 'ref', '1', 'nano-' || (i.id % :d), "
            "t, t, t + make_interval(secs => 0.5 + (i.id % 97) / 10.0), 1.5, "
            "2 + (i.id % 200) / 10.0, 1, "
            "CASE WHEN i.id % (:n / :f) = 0 THEN 'cannot decode image (' || i.id % 7 || ')' END "
            "FROM (SELECT id, timestamptz '2026-12-01 08:00+00' + make_interval(secs => id "
            "/ CAST(:r AS float8)) AS t FROM images) i"
        ),
        {"n": n, "f": FAILURES, "d": DEVICES, "r": PER_SECOND},
    )


def _build_sqlite(c: Connection, n: int) -> None:
    labels = ",".join(f'"{c}"' for c in CLASSES)
    pick = f"json_extract('[{labels}]', '$[' || ((g) % 4) || ']')"
    c.execute(
        text(
            "INSERT INTO runs (id, name, created_at, path_mode) "
            "VALUES (1, 'big', datetime('now'), 'absolute')"
        )
    )
    c.execute(
        text(
            "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n) "
            "INSERT INTO images (run_id, sha256, path, location, size_bytes, ground_truth, "
            f"deliveries, attempts_alone) SELECT 1, printf('%064x', g), {pick} || '/' || g "
            f"|| '.jpg', CAST('/a/' || g AS BLOB), 50000, {pick}, 1, 0 FROM s"
        ),
        {"n": n},
    )
    label = pick.replace("(g) % 4", "(i.id * 7) % 4")
    failed = "i.id % (:n / :f) = 0"
    c.execute(
        text(
            "INSERT INTO results (run_id, image_id, status, label, confidence, scores, "
            "model_sha256, model_name, model_version, device, queued_at, started_at, "
            "finished_at, decode_ms, inference_ms, attempts, error) "
            f"SELECT 1, i.id, CASE WHEN {failed} THEN 'failed' ELSE 'done' END, "
            f"CASE WHEN {failed} THEN NULL ELSE {label} END, 0.9, "
            '\'{"Benign": 0.03, "Early": 0.04, "Pre": 0.9, "Pro": 0.03}\', '
            f"'{'ab' * 32}', 'ref', '1', 'nano-' || (i.id % :d), t, t, "
            "strftime('%Y-%m-%d %H:%M:%f', t, '+' || (0.5 + (i.id % 97) / 10.0) || ' seconds'), "
            "1.5, 2 + (i.id % 200) / 10.0, 1, "
            f"CASE WHEN {failed} THEN 'cannot decode image (' || i.id % 7 || ')' END "
            "FROM (SELECT id, strftime('%Y-%m-%d %H:%M:%f', '2026-12-01 08:00:00', '+' || "
            "(id * 1.0 / :r) || ' seconds') AS t FROM images) i"
        ),
        {"n": n, "f": FAILURES, "d": DEVICES, "r": PER_SECOND},
    )


def build(url: str, n: int) -> None:
    """A migrated database holding run `big` of `n` images, its tallies kept by triggers."""
    engine = make_engine(url)
    ensure_schema(engine, create=True)
    with engine.begin() as conn:
        (_build_pg if engine.dialect.name == "postgresql" else _build_sqlite)(conn, n)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one run of `cmd`; for a command that prints
    `scrape-ms X`, its own figure (X / 1000 s) instead of the process's wall time."""
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", *cmd], env=env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip().splitlines()[-1:]}")
    wall, rss = out.stderr.strip().splitlines()[-1].split()
    own = [ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith("scrape-ms ")]
    return (float(own[0]) / 1000 if own else float(wall)), int(rss) / 1024


def measure(url: str, repeats: int, workdir: Path) -> dict[str, tuple[float, float]]:
    """Median (s, MB) of each command against the database at `url`."""
    env = {**os.environ, "ALLSCREEN_DATABASE_URL": url}
    py = sys.executable
    commands = {
        "baseline (--help)": [py, "-m", "allscreen", "--help"],
        "status": [py, "-m", "allscreen", "status", "big"],
        "report --html": [
            py,
            "-m",
            "allscreen",
            "report",
            "big",
            "--html",
            str(workdir / "r.html"),
        ],
        "metrics scrape (one collect)": [py, "-c", SCRAPE],
    }
    out = {}
    for name, cmd in commands.items():
        runs = [timed(cmd, env) for _ in range(repeats)]
        out[name] = (median([r[0] for r in runs]), median([r[1] for r in runs]))
    return out


@contextmanager
def database(dialect: str, workdir: Path) -> Iterator[str]:
    """A throwaway database of `dialect`."""
    if dialect == "postgresql":
        with postgres_database(prefix="allscreen_large_run") as url:
            yield url
    else:
        with sqlite_database(workdir) as url:
            yield url


def main() -> None:
    """Build each size on each dialect, measure, print a table and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dialects", nargs="+", default=["sqlite", "postgresql"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for dialect in args.dialects:
            figures: dict[int, dict[str, tuple[float, float]]] = {}
            for n in args.sizes:
                with database(dialect, workdir) as url:
                    build(url, n)
                    figures[n] = measure(url, args.repeats, workdir)
                print(f"\n{dialect}, {n:,} images (medians of {args.repeats})")
                for name, (s, mb) in figures[n].items():
                    print(f"  {name:22s} {s:8.3f} s  {mb:7.0f} MB")
            if len(args.sizes) > 1:
                small, large = min(args.sizes), max(args.sizes)
                print(f"  {large:,} / {small:,} ratio:")
                for name in figures[small]:
                    (s1, m1), (s2, m2) = figures[small][name], figures[large][name]
                    print(f"  {name:22s} time x{s2 / s1:.2f}  memory x{m2 / m1:.2f}")


if __name__ == "__main__":
    main()
