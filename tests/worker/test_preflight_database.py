"""The worker's database check: reachable, schema current, and a warning when PostgreSQL
never refreshes its planner statistics."""

from __future__ import annotations

import psycopg
from sqlalchemy import Engine

from allscreen.settings import Settings
from worker.preflight import check_database


def test_the_database_check_warns_exactly_when_autovacuum_is_off(
    engine: Engine, db_url: str
) -> None:
    line = check_database(Settings(database_url=db_url))
    assert "reachable, schema current" in line
    if engine.dialect.name != "postgresql":
        assert "warning" not in line
        return
    with psycopg.connect(db_url.replace("+psycopg", "")) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
    assert row is not None
    if row[0] == "on":
        assert "autovacuum" not in line
    else:
        assert "warning: autovacuum is off" in line and "ANALYZE" in line
