"""The triggers that keep the tally tables in step with `results` and `images`.

Why triggers, and what they guarantee, is in allscreen/tallies.py. PostgreSQL gets
statement-level triggers with transition tables: one aggregated upsert per statement (a
worker's batch of 64 rows costs three small upserts, not three per row), in key order, so
concurrent writers lock tally rows in the same order. SQLite has only row-level triggers;
its writers are serialised, so order does not matter there.

On PostgreSQL a statement's INSERT trigger runs before its UPDATE trigger (an upsert fires
both), so key order alone cannot stop two writers of one run from taking tally rows in
opposite orders; each trigger therefore first takes a transaction-level advisory lock per
run (`TALLY_LOCK`, run id). The result rows themselves are still written in parallel; only
applying the few tally deltas, and the commit after it, are serialised per run.

Insert and update triggers upsert (`n = n + delta`); delete triggers only UPDATE existing
tally rows, because a run's deletion cascades to its results and to its tallies in no fixed
order, and re-inserting a tally row of a run being deleted would break its foreign key.
"""

from __future__ import annotations

from sqlalchemy import Connection

from allscreen.tallies import KIND_INFERENCE, KIND_WAIT, bucket_sql, minute_sql, wait_sql

_RESULT_SUMS = (
    "done",
    "failed",
    "inference_n",
    "inference_ms_sum",
    "wait_n",
    "wait_s_sum",
)
_PG_FUNCTIONS = ("results_tally_ins", "results_tally_upd", "results_tally_del")
_PG_IMAGE_FUNCTIONS = ("images_tally_ins", "images_tally_del")
_SQLITE_TRIGGERS = (
    "results_tally_ins",
    "results_tally_upd",
    "results_tally_del",
    "images_tally_ins",
    "images_tally_del",
)


def _derived(dialect: str, src: str, sign: str) -> str:
    """A SELECT of `src`'s rows with the values the tallies need (`sign` is +1 or -1)."""
    done = "r.status = 'done'"
    wait = wait_sql(dialect, "r.queued_at", "r.finished_at")
    return (
        f"SELECT {sign} AS sign, r.run_id, r.image_id, r.device, r.label, r.model_sha256, "
        f"r.model_name, r.model_version, r.queued_at, r.finished_at, "
        f"{minute_sql(dialect, 'r.finished_at')} AS minute, "
        f"CASE WHEN {done} THEN 1 ELSE 0 END AS is_done, "
        f"CASE WHEN {done} AND r.inference_ms IS NOT NULL THEN r.inference_ms END AS ms, "
        f"CASE WHEN {done} AND r.queued_at IS NOT NULL THEN {wait} END AS wait_s "
        f"FROM {src} r"
    )


def _aggregates(d: str) -> dict[str, str]:
    """Per-group SELECT lists over derived rows `d` for each tally table."""
    return {
        "result": (
            f"SELECT run_id, device, minute, sum(sign * is_done) AS done, "
            f"sum(sign * (1 - is_done)) AS failed, "
            f"sum(CASE WHEN ms IS NULL THEN 0 ELSE sign END) AS inference_n, "
            f"coalesce(sum(sign * ms), 0) AS inference_ms_sum, "
            f"sum(CASE WHEN wait_s IS NULL THEN 0 ELSE sign END) AS wait_n, "
            f"coalesce(sum(sign * wait_s), 0) AS wait_s_sum, "
            f"min(queued_at) AS first_queued_at, max(finished_at) AS last_finished_at "
            f"FROM ({d}) d GROUP BY run_id, device, minute ORDER BY run_id, device, minute"
        ),
        "latency": (
            "SELECT run_id, device, kind, bucket, sum(sign) AS n FROM ("
            f"SELECT sign, run_id, device, '{KIND_INFERENCE}' AS kind, {bucket_sql('ms')} "
            f"AS bucket FROM ({d}) d WHERE ms IS NOT NULL UNION ALL "
            f"SELECT sign, run_id, device, '{KIND_WAIT}', {bucket_sql('wait_s')} "
            f"FROM ({d}) d WHERE wait_s IS NOT NULL) x "
            "GROUP BY run_id, device, kind, bucket ORDER BY run_id, device, kind, bucket"
        ),
        "label": (
            "SELECT d.run_id, coalesce(d.model_sha256, '') AS model_sha256, "
            "coalesce(i.ground_truth, '') AS truth, coalesce(d.label, '') AS label, "
            "sum(d.sign) AS n, max(d.model_name) AS model_name, "
            "max(d.model_version) AS model_version "
            f"FROM ({d}) d LEFT JOIN images i ON i.id = d.image_id WHERE d.is_done = 1 "
            "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
        ),
    }


_KEYS = {
    "result": ("result_tallies", ("run_id", "device", "minute")),
    "latency": ("latency_tallies", ("run_id", "device", "kind", "bucket")),
    "label": ("label_tallies", ("run_id", "model_sha256", "truth", "label")),
}
_SUMS = {"result": _RESULT_SUMS, "latency": ("n",), "label": ("n",)}


def _upserts(d: str) -> list[str]:
    """INSERT ... ON CONFLICT DO UPDATE statements adding the deltas of derived rows `d`."""
    out = []
    for part, select in _aggregates(d).items():
        table, keys = _KEYS[part]
        sets = [f"{c} = {table}.{c} + excluded.{c}" for c in _SUMS[part]]
        extra: tuple[str, ...] = ()
        if part == "result":
            extra = ("first_queued_at", "last_finished_at")
            sets += [
                f"first_queued_at = coalesce(min_of({table}.first_queued_at, "
                "excluded.first_queued_at), excluded.first_queued_at, "
                f"{table}.first_queued_at)",
                f"last_finished_at = coalesce(max_of({table}.last_finished_at, "
                "excluded.last_finished_at), excluded.last_finished_at, "
                f"{table}.last_finished_at)",
            ]
        elif part == "label":
            extra = ("model_name", "model_version")
            sets += [f"{c} = coalesce(excluded.{c}, {table}.{c})" for c in extra]
        cols = ", ".join((*keys, *_SUMS[part], *extra))
        # "WHERE true": SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT.
        out.append(
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM ({select}) a WHERE true "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}"
        )
    return out


def _updates(d: str) -> list[str]:
    """UPDATE statements taking the deltas of derived rows `d` off existing tally rows."""
    out = []
    for part, select in _aggregates(d).items():
        table, keys = _KEYS[part]
        sets = ", ".join(f"{c} = {table}.{c} + a.{c}" for c in _SUMS[part])
        match = " AND ".join(f"{table}.{k} = a.{k}" for k in keys)
        out.append(f"UPDATE {table} SET {sets} FROM ({select}) a WHERE {match}")
    return out


def _dialect_fix(sql: str, dialect: str) -> str:
    # least/greatest ignore NULLs on PostgreSQL; SQLite's two-argument min/max are the same
    # once both are known, and the coalesce around them covers a NULL side.
    if dialect == "postgresql":
        return sql.replace("min_of(", "least(").replace("max_of(", "greatest(")
    return sql.replace("min_of(", "min(").replace("max_of(", "max(")


#: First key of the transaction-level advisory locks that serialise tally writes per run.
TALLY_LOCK = 7007


def _run_lock(src: str) -> str:
    """Lock each run of `src` until commit: one writer at a time applies a run's deltas."""
    return (
        f"PERFORM pg_advisory_xact_lock({TALLY_LOCK}, x.run_id) "
        f"FROM (SELECT DISTINCT run_id FROM {src} ORDER BY run_id) x"
    )


def _pg_function(name: str, statements: list[str], lock: str | None = None) -> str:
    body = ";\n".join(
        ([_run_lock(lock)] if lock else []) + [_dialect_fix(s, "postgresql") for s in statements]
    )
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
        "SECURITY DEFINER SET search_path FROM CURRENT AS $fn$ BEGIN\n"
        f"{body};\nRETURN NULL; END $fn$"
    )


def _pg_ddl() -> list[str]:
    pg = "postgresql"
    new, old = _derived(pg, "new_rows", "1"), _derived(pg, "old_rows", "-1")
    image_count = "SELECT run_id, count(*) AS n FROM {src} GROUP BY run_id ORDER BY run_id"
    truth_count = (
        "SELECT run_id, ground_truth AS truth, count(*) AS n FROM {src} "
        "WHERE ground_truth IS NOT NULL GROUP BY run_id, ground_truth ORDER BY run_id, truth"
    )
    ddl = [
        _pg_function("results_tally_ins", _upserts(new), "new_rows"),
        _pg_function("results_tally_upd", _updates(old) + _upserts(new), "new_rows"),
        _pg_function("results_tally_del", _updates(old), "old_rows"),
        _pg_function(
            "images_tally_ins",
            [
                "INSERT INTO run_tallies (run_id, images) "
                f"SELECT run_id, n FROM ({image_count.format(src='new_rows')}) a WHERE true "
                "ON CONFLICT (run_id) DO UPDATE SET images = run_tallies.images + excluded.images",
                "INSERT INTO truth_tallies (run_id, truth, images) "
                f"SELECT run_id, truth, n FROM ({truth_count.format(src='new_rows')}) a "
                "WHERE true ON CONFLICT (run_id, truth) "
                "DO UPDATE SET images = truth_tallies.images + excluded.images",
            ],
        ),
        _pg_function(
            "images_tally_del",
            [
                "UPDATE run_tallies SET images = run_tallies.images - a.n "
                f"FROM ({image_count.format(src='old_rows')}) a "
                "WHERE run_tallies.run_id = a.run_id",
                "UPDATE truth_tallies SET images = truth_tallies.images - a.n "
                f"FROM ({truth_count.format(src='old_rows')}) a "
                "WHERE truth_tallies.run_id = a.run_id AND truth_tallies.truth = a.truth",
            ],
        ),
    ]
    for table, event, name, ref in (
        ("results", "INSERT", "results_tally_ins", "NEW TABLE AS new_rows"),
        ("results", "UPDATE", "results_tally_upd", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("results", "DELETE", "results_tally_del", "OLD TABLE AS old_rows"),
        ("images", "INSERT", "images_tally_ins", "NEW TABLE AS new_rows"),
        ("images", "DELETE", "images_tally_del", "OLD TABLE AS old_rows"),
    ):
        ddl.append(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {ref} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    return ddl


def _sqlite_trigger(name: str, event: str, table: str, statements: list[str]) -> str:
    body = ";\n".join(_dialect_fix(s, "sqlite") for s in statements)
    return f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN\n{body};\nEND"


def _sqlite_ddl() -> list[str]:
    lite = "sqlite"
    # A row trigger sees NEW / OLD; a one-row SELECT of them plays the transition table.
    row = (
        "(SELECT {p}.run_id AS run_id, {p}.image_id AS image_id, {p}.device AS device, "
        "{p}.status AS status, {p}.label AS label, {p}.model_sha256 AS model_sha256, "
        "{p}.model_name AS model_name, {p}.model_version AS model_version, "
        "{p}.queued_at AS queued_at, {p}.finished_at AS finished_at, "
        "{p}.inference_ms AS inference_ms)"
    )
    new, old = (_derived(lite, row.format(p=p), s) for p, s in (("NEW", "1"), ("OLD", "-1")))
    return [
        _sqlite_trigger("results_tally_ins", "INSERT", "results", _upserts(new)),
        _sqlite_trigger("results_tally_upd", "UPDATE", "results", _updates(old) + _upserts(new)),
        _sqlite_trigger("results_tally_del", "DELETE", "results", _updates(old)),
        _sqlite_trigger(
            "images_tally_ins",
            "INSERT",
            "images",
            [
                "INSERT INTO run_tallies (run_id, images) VALUES (NEW.run_id, 1) "
                "ON CONFLICT (run_id) DO UPDATE SET images = run_tallies.images + 1",
                "INSERT INTO truth_tallies (run_id, truth, images) SELECT NEW.run_id, "
                "NEW.ground_truth, 1 WHERE NEW.ground_truth IS NOT NULL "
                "ON CONFLICT (run_id, truth) DO UPDATE SET images = truth_tallies.images + 1",
            ],
        ),
        _sqlite_trigger(
            "images_tally_del",
            "DELETE",
            "images",
            [
                "UPDATE run_tallies SET images = images - 1 WHERE run_id = OLD.run_id",
                "UPDATE truth_tallies SET images = images - 1 "
                "WHERE run_id = OLD.run_id AND truth = OLD.ground_truth",
            ],
        ),
    ]


def trigger_ddl(dialect: str) -> list[str]:
    """The statements that create the tally triggers (and, on PostgreSQL, their functions)."""
    return _pg_ddl() if dialect == "postgresql" else _sqlite_ddl()


def drop_ddl(dialect: str) -> list[str]:
    """The statements that drop what `trigger_ddl` makes."""
    if dialect == "postgresql":
        return [
            f"DROP FUNCTION IF EXISTS {name}() CASCADE"
            for name in (*_PG_FUNCTIONS, *_PG_IMAGE_FUNCTIONS)
        ]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in _SQLITE_TRIGGERS]


def drop_triggers(conn: Connection) -> None:
    """Drop the tally triggers (benchmarks measure writes without them)."""
    for stmt in drop_ddl(conn.dialect.name):
        conn.exec_driver_sql(stmt)
