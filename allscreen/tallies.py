"""Write-time tallies of results: what `status`, `report` and `metrics` read instead of rows.

A run of millions of images cannot be read back row by row: `status` and `report` loaded
every result into Python and the exporter scanned every result on each scrape. The tally
tables (allscreen/schema.py: `run_tallies`, `truth_tallies`, `result_tallies`, `latency_tallies`,
`label_tallies`) hold per-run, per-device, per-minute counts, sums, log-spaced latency
histograms and (truth, label) counts, a few thousand rows for a million images.

Why database triggers (allscreen/tally_sql.py) and not deltas computed in `upsert_results`:

- every writer is covered, not only the worker's upsert: the producer's own result rows,
  tests and benchmarks that insert with SQL, deletes and run deletion, and any future path;
- the tallies change in the same transaction as the rows, by construction, whatever the
  statement (an over-delivered batch, a failure replaced in place by `done`, a late failure
  the upsert's `WHERE status != 'done'` skips: a row not written fires nothing);
- the device role needs no new privilege: on PostgreSQL the trigger functions are SECURITY
  DEFINER (owned by whoever migrated the schema), so workers keep exactly the grants in
  allscreen/db_roles.py and still cannot read an image's ground truth;
- concurrent writers on PostgreSQL stay correct: each statement's rows are aggregated from
  its transition tables and applied as `n = n + delta` upserts under a per-run advisory
  lock held to commit, so two workers of one run queue rather than deadlock (the result
  rows are still written in parallel; only the few tally upserts and the commit wait).

The tallies are exact counts of the rows present (tests compare them with `rebuild_tallies`
after duplicates, retries and concurrent writers), except `first_queued_at` and
`last_finished_at`, which are only ever widened, and except the ground truth of an image
deleted on its own (its results are taken off under an empty truth); run deletion removes
every tally of the run. `rebuild_tallies` recomputes a run's tallies from its rows: the
migration's backfill, and the repair for anything written with triggers disabled.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

#: Upper bounds (seconds) of the exporter's inference-latency buckets: a 96x96 CNN takes about
#: a millisecond on a desktop core and tens of milliseconds on a Jetson Nano's CPU.
INFERENCE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
#: Upper bounds (seconds) of the exporter's queue-to-result buckets: the producer keeps up to
#: 16 batches queued, so waits of seconds to minutes are normal; hours mean a stalled fleet.
QUEUE_TO_RESULT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Buckets per decade of the tally histograms: each bucket spans a factor 10^(1/32) (7.5 %),
#: so a percentile read from them is within 7.5 % of the exact one.
PER_DECADE = 32


def _edges() -> tuple[float, ...]:
    """Log-spaced bounds from 1e-3 to 1e5 (ms or s), plus the exporter's bounds exactly."""
    grid = [round(10 ** (k / PER_DECADE), 12) for k in range(-3 * PER_DECADE, 5 * PER_DECADE + 1)]
    exact = [round(b * 1000, 9) for b in INFERENCE_BUCKETS] + [
        float(b) for b in QUEUE_TO_RESULT_BUCKETS
    ]
    kept = [g for g in grid if all(abs(g - e) > 1e-6 * e for e in exact)]
    return tuple(sorted(set(kept) | set(exact)))


#: Upper bounds of the tally histogram buckets; bucket len(BUCKET_EDGES) holds larger values.
BUCKET_EDGES = _edges()
OVERFLOW = len(BUCKET_EDGES)
KIND_INFERENCE = "inference"  #: inference_ms of done results, in ms
KIND_WAIT = "wait"  #: queued_at to finished_at of done results, in s


def minute_sql(dialect: str, col: str) -> str:
    """SQL for the UTC epoch minute of timestamp column `col`."""
    if dialect == "postgresql":
        return f"floor(extract(epoch FROM {col}) / 60)::bigint"
    return f"(CAST(strftime('%s', {col}) AS INTEGER) / 60)"


def wait_sql(dialect: str, queued: str, finished: str) -> str:
    """SQL for seconds from `queued` to `finished`, at least 0 (device clocks may lag)."""
    if dialect == "postgresql":
        return (
            f"CASE WHEN {queued} IS NULL THEN NULL ELSE "
            f"greatest(extract(epoch FROM {finished} - {queued})::float8, 0) END"
        )
    diff = f"((julianday({finished}) - julianday({queued})) * 86400.0)"
    return f"CASE WHEN {queued} IS NULL THEN NULL WHEN {diff} < 0 THEN 0.0 ELSE {diff} END"


def bucket_sql(value: str) -> str:
    """SQL for the tally bucket of `value`: one probe of the unique index on `upper` (the
    edges rise with `idx`), not a scan of every edge (5 ms per 128 rows on PostgreSQL)."""
    return (
        f"coalesce((SELECT b.idx FROM tally_buckets b WHERE b.upper >= {value} "
        f"ORDER BY b.upper LIMIT 1), {OVERFLOW})"
    )


def rebuild_statements(dialect: str) -> list[str]:
    """The statements that recount one run's tallies (`:run`) from its rows."""
    minute = minute_sql(dialect, "r.finished_at")
    wait = wait_sql(dialect, "r.queued_at", "r.finished_at")
    done = "r.status = 'done'"
    timed = f"{done} AND r.inference_ms IS NOT NULL"
    waited = f"{done} AND r.queued_at IS NOT NULL"
    return [
        "DELETE FROM run_tallies WHERE run_id = :run",
        "DELETE FROM truth_tallies WHERE run_id = :run",
        "DELETE FROM result_tallies WHERE run_id = :run",
        "DELETE FROM latency_tallies WHERE run_id = :run",
        "DELETE FROM label_tallies WHERE run_id = :run",
        "INSERT INTO run_tallies (run_id, images) "
        "SELECT :run, count(*) FROM images WHERE run_id = :run",
        "INSERT INTO truth_tallies (run_id, truth, images) SELECT :run, ground_truth, count(*) "
        "FROM images WHERE run_id = :run AND ground_truth IS NOT NULL GROUP BY ground_truth",
        "INSERT INTO result_tallies (run_id, device, minute, done, failed, inference_n, "
        "inference_ms_sum, wait_n, wait_s_sum, first_queued_at, last_finished_at) "
        f"SELECT r.run_id, r.device, {minute}, "
        f"sum(CASE WHEN {done} THEN 1 ELSE 0 END), sum(CASE WHEN {done} THEN 0 ELSE 1 END), "
        f"sum(CASE WHEN {timed} THEN 1 ELSE 0 END), "
        f"coalesce(sum(CASE WHEN {timed} THEN r.inference_ms END), 0), "
        f"sum(CASE WHEN {waited} THEN 1 ELSE 0 END), "
        f"coalesce(sum(CASE WHEN {waited} THEN {wait} END), 0), "
        "min(r.queued_at), max(r.finished_at) "
        f"FROM results r WHERE r.run_id = :run GROUP BY r.run_id, r.device, {minute}",
        "INSERT INTO latency_tallies (run_id, device, kind, bucket, n) "
        "SELECT run_id, device, kind, bucket, count(*) FROM ("
        f"SELECT r.run_id, r.device, '{KIND_INFERENCE}' AS kind, "
        f"{bucket_sql('r.inference_ms')} AS bucket FROM results r "
        f"WHERE r.run_id = :run AND {timed} UNION ALL "
        f"SELECT r.run_id, r.device, '{KIND_WAIT}', {bucket_sql(wait)} FROM results r "
        f"WHERE r.run_id = :run AND {waited}) x GROUP BY run_id, device, kind, bucket",
        "INSERT INTO label_tallies (run_id, model_sha256, truth, label, n, model_name, "
        "model_version) SELECT r.run_id, coalesce(r.model_sha256, ''), "
        "coalesce(i.ground_truth, ''), coalesce(r.label, ''), count(*), max(r.model_name), "
        "max(r.model_version) FROM results r JOIN images i ON i.id = r.image_id "
        f"WHERE r.run_id = :run AND {done} GROUP BY r.run_id, coalesce(r.model_sha256, ''), "
        "coalesce(i.ground_truth, ''), coalesce(r.label, '')",
    ]


def rebuild_in(conn: Connection, run_id: int) -> None:
    """Recompute run `run_id`'s tallies from its rows, on an open connection."""
    for stmt in rebuild_statements(conn.dialect.name):
        conn.execute(text(stmt), {"run": run_id})


def rebuild_tallies(engine: Engine, run_id: int | None = None) -> None:
    """Recompute the tallies of run `run_id` (every run when None) from its rows, in one
    transaction (on PostgreSQL, writers of the run wait on the locks it takes)."""
    with engine.begin() as conn:
        if run_id is None:
            ids = [int(i) for i in conn.execute(text("SELECT id FROM runs")).scalars()]
        else:
            ids = [run_id]
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE results, images IN SHARE MODE"))
        for i in ids:
            rebuild_in(conn, i)
