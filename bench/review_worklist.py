"""The review page's worklist: how long a run of 200,000 images in 5,000 cases takes to render.

A run is built with SQL inserts (untimed): images in cases of 40, a `done` result each with
scores shaped like the reference model's (four labels; most images confidently Benign, a few
per cent Early/Pre/Pro, some unsure), the model's record and a policy (Benign ≥ 0.9, review
below 0.8). Then `GET /runs/{id}` (the worklist, default filters) is sent straight to the
ASGI app (`reviewweb.app.create_app`, no network, no server), and the median of several
requests is printed with the row counts: cold (a new app), warm, after 500 more results
landed (as while workers still screen the run), and a case page after a verdict. The
baseline, measured in the same run, is one pass over the run's result rows (a count and a
sum of one column), and the cold and live lines give their ratio to it. Run:
    .venv/bin/python -m bench.review_worklist [--images 200000] [--cases 5000] [--db sqlite]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

from allscreen.db import ensure_schema, make_engine
from allscreen.policy import ScreeningPolicy
from allscreen.policy_store import set_policy
from allscreen.schema import STATUS_DONE, Case, Image, ModelRecord, Result, Run, Verdict
from bench.common import machine, median
from bench.result_writes import database
from readout.verdicts import VerdictInput, record_verdicts

LABELS = ("Benign", "Early", "Pre", "Pro")  #: the reference model's labels, in its order
MODEL_SHA = "ab" * 32  #: a stand-in sha256 for the model record
POLICY = ScreeningPolicy(("Benign",), min_negative_score=0.9, min_confidence=0.8)
_CHUNK = 5000  #: rows per executemany while building (untimed)
ARRIVING = 500  #: results that land between two worklist requests in the "live" line


def _scores(rng: random.Random) -> dict[str, float]:
    """Scores like the reference model's: 92% Benign-confident, the rest split or malignant."""
    roll = rng.random()
    top = "Benign" if roll < 0.95 else rng.choice(LABELS[1:])
    p = rng.uniform(0.97, 0.999) if roll < 0.92 else rng.uniform(0.45, 0.99)
    rest = [rng.random() for _ in LABELS[1:]]
    total = sum(rest)
    others = [x for x in LABELS if x != top]
    return {top: p, **{x: (1 - p) * r / total for x, r in zip(others, rest, strict=True)}}


def build_run(
    engine: Engine,
    *,
    images: int,
    cases: int,
    name: str = "bench",
    files: Sequence[Path] = (),
    seed: int = 0,
    pending: int = 0,
) -> int:
    """Create run `name` with `images` classified images in `cases` cases; return its id.

    `files` (cycled) are the images' registered locations; without them the locations name
    files that do not exist, which the worklist never reads. The last `pending` images get
    no result (`arrive` gives them one later)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        run_id = int(
            conn.execute(
                insert(Run).values(name=name, created_at=now).returning(Run.id)
            ).scalar_one()
        )
        conn.execute(
            insert(Case),
            [
                {"run_id": run_id, "name": f"A{k:05d}", "patient": f"P{k // 2:05d}"}
                for k in range(cases)
            ],
        )
        case_ids = sorted(conn.scalars(select(Case.id).where(Case.run_id == run_id)))
        for start in range(0, images, _CHUNK):
            rows: list[dict[str, Any]] = []
            for i in range(start, min(images, start + _CHUNK)):
                case = i * cases // images
                where = files[i % len(files)] if files else Path(f"/archive/none/{i}.jpg")
                rows.append(
                    {
                        "run_id": run_id,
                        "sha256": f"{run_id:08x}{i:056x}",
                        "path": f"A{case:05d}/slide1/img-{i:07d}.jpg",
                        "location": bytes(where),
                        "size_bytes": 20_000,
                        "case_id": case_ids[case],
                        "deliveries": 1,
                    }
                )
            conn.execute(insert(Image), rows)
        ids = list(conn.scalars(select(Image.id).where(Image.run_id == run_id).order_by(Image.id)))
        results = [_result(run_id, i, rng, now) for i in ids[: len(ids) - pending]]
        for start in range(0, len(results), _CHUNK):
            conn.execute(insert(Result), results[start : start + _CHUNK])
        if conn.scalar(select(func.count()).where(ModelRecord.sha256 == MODEL_SHA)) == 0:
            conn.execute(
                insert(ModelRecord).values(
                    sha256=MODEL_SHA,
                    name="allscreen ALL reference",
                    version="3",
                    labels=json.dumps(list(LABELS)),
                    thresholds="[]",
                    first_seen=now,
                )
            )
    set_policy(engine, run_id, POLICY, source="bench", labels=list(LABELS))
    return run_id


def _result(run_id: int, image_id: int, rng: random.Random, now: datetime) -> dict[str, Any]:
    scores = _scores(rng)
    label = max(scores, key=lambda x: scores[x])
    return {
        "run_id": run_id,
        "image_id": image_id,
        "status": STATUS_DONE,
        "label": label,
        "confidence": scores[label],
        "scores": json.dumps(scores),
        "model_sha256": MODEL_SHA,
        "device": "bench",
        "finished_at": now,
    }


def arrive(engine: Engine, run_id: int, n: int, *, seed: int = 1) -> int:
    """Give `n` pending images of the run a result, as workers would; return how many got one."""
    rng = random.Random(seed)
    with engine.begin() as conn:
        ids = conn.scalars(
            select(Image.id)
            .outerjoin(Result, Result.image_id == Image.id)
            .where(Image.run_id == run_id, Result.id.is_(None))
            .order_by(Image.id)
            .limit(n)
        ).all()
        if ids:
            now = datetime.now(UTC)
            conn.execute(insert(Result), [_result(run_id, i, rng, now) for i in ids])
    return len(ids)


async def _get(app: Any, path: str) -> tuple[int, bytes]:
    """One GET straight into the ASGI app."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8600")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8600),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"]), b"".join(m.get("body", b"") for m in sent[1:])


def _timed(app: Any, path: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    status, body = anyio.run(_get, app, path)
    took = time.perf_counter() - t0
    assert status == 200, body[-500:]
    return took, len(body)


def _line(what: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    spread = f"min {ms[0]:.0f}, max {ms[-1]:.0f}, n={len(ms)}"
    return f"{'':<10} {what}: median {median(ms):.0f} ms ({spread})"


def measure(kind: str, images: int, cases: int, repeats: int) -> None:
    """Build a run on a fresh database of `kind`, then time its worklist and case pages.

    cold: a new app each time (the first request after `allscreen serve` starts, or after
    new results arrive); warm: the same app again; after a verdict: one verdict recorded
    (`record_verdicts`, timed too), then the case page: together what a reviewer waits for
    after a key press."""
    from reviewweb.app import create_app

    with tempfile.TemporaryDirectory() as tmp, database(kind, Path(tmp)) as url:
        engine = make_engine(url)
        ensure_schema(engine, create=True)
        t0 = time.perf_counter()
        run_id = build_run(engine, images=images, cases=cases, pending=ARRIVING * repeats)
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))  # as autovacuum would soon after a bulk load
        built = time.perf_counter() - t0
        with Session(engine, expire_on_commit=False) as session:
            run = session.get(Run, run_id)
            assert run is not None
            n_images = session.scalar(select(func.count()).select_from(Image))
            n_cases = session.scalar(select(func.count()).select_from(Case))
            n_results = session.scalar(select(func.count()).select_from(Result))
            case_ids = list(session.scalars(select(Case.id).order_by(Case.id).limit(repeats)))
        worklist = f"/runs/{run_id}"
        cold = [_timed(create_app(engine), worklist) for _ in range(repeats)]
        app = create_app(engine)
        _timed(app, worklist)
        warm = [_timed(app, worklist)[0] for _ in range(repeats)]
        live = []
        for _ in range(repeats):
            arrive(engine, run_id, ARRIVING)
            live.append(_timed(app, worklist)[0])
        with engine.connect() as conn:
            scan = []
            for _ in range(repeats):
                t1 = time.perf_counter()
                conn.execute(
                    select(func.count(), func.sum(Result.confidence), func.max(Result.label)).where(
                        Result.run_id == run_id
                    )
                ).one()
                scan.append(time.perf_counter() - t1)
        after, record = [], []
        for case_id in case_ids:
            with engine.connect() as conn:
                sha = conn.scalar(select(Image.sha256).where(Image.case_id == case_id).limit(1))
            t1 = time.perf_counter()
            record_verdicts(engine, run, [VerdictInput(str(sha), "Early", "bench")])
            record.append(time.perf_counter() - t1)
            after.append(_timed(app, f"/runs/{run_id}/cases/{case_id}")[0])
        with engine.connect() as conn:
            n_verdicts = conn.scalar(select(func.count()).select_from(Verdict))
        print(
            f"{kind:<10} images {n_images}  cases {n_cases}  results {n_results}  "
            f"verdicts {n_verdicts}  (built in {built:.0f} s)"
        )
        base = median(scan)
        print(_line("baseline: one pass over the run's result rows", scan))
        first = [t for t, _ in cold]
        print(_line(f"worklist GET {worklist} cold", first) + f", {median(first) / base:.1f}x")
        print(_line("worklist warm", warm) + f", {cold[0][1] / 1e3:.0f} kB of HTML")
        print(
            _line(f"worklist after {ARRIVING} more results", live) + f", {median(live) / base:.1f}x"
        )
        print(_line("record_verdicts, one image (the POST's work)", record))
        print(_line("case page after a verdict", after))
        engine.dispose()


def main() -> None:
    """Print the worklist's render time for each database kind asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--cases", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--db", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    args = parser.parse_args()
    print(f"review worklist render, {machine()}")
    for kind in args.db:
        measure(kind, args.images, args.cases, args.repeats)


if __name__ == "__main__":
    main()
