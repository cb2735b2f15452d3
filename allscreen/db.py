"""Engines and schema checks. Connections open lazily: nothing connects at import time."""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from allscreen.errors import ConfigError, DatabaseUnavailable, SchemaMissing, SchemaOutdated
from allscreen.settings import Settings, mask_url

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported only to migrate: every command checks the schema's revision, and
# importing Alembic and every migration for that took about a third of a short command's
# time (`status`), so the head is read from the migration files' text and the database's
# revision from `alembic_version` (tests/allscreen check both against Alembic's own answer).

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the producer read progress while workers write; busy_timeout rides out locks.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, *, pre_ping: bool = True) -> Engine:
    """Create an engine for `url`, refusing malformed URLs with a clear message.

    `pre_ping` tests each pooled PostgreSQL connection with a round trip before use, so a
    connection the server dropped is replaced unseen. Callers that retry a dropped connection
    themselves (`with_db_retry`: the worker's batches) turn it off: on a device 20 ms from the
    database it cost 40 ms a batch, a ping before each of two transactions.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL is not valid: {mask_url(url)!r}") from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if parsed.drivername.startswith("sqlite"):
            # Pooled: closing SQLite's last WAL connection checkpoints and syncs, which cost
            # ~20 ms per batch with a connection per transaction (see BENCHMARKS.md).
            engine = create_engine(
                parsed, pool_size=2, max_overflow=4, connect_args={"timeout": 30}
            )
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(
                parsed, pool_pre_ping=pre_ping, pool_size=2, connect_args={"connect_timeout": 5}
            )
    except Exception as exc:  # driver import or option errors
        raise ConfigError(f"cannot use database {mask_url(url)}: {exc}") from exc
    return engine


_ENGINES: dict[tuple[str, bool], Engine] = {}


def get_engine(url: str, *, pre_ping: bool = True) -> Engine:
    """One engine per URL (and `pre_ping`) per process (workers reuse its pool across tasks)."""
    key = (url, pre_ping)
    if key not in _ENGINES:
        _ENGINES[key] = make_engine(url, pre_ping=pre_ping)
    return _ENGINES[key]


def _forget_inherited_connections() -> None:
    # A forked pool process must not use its parent's pooled connections.
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and at `url`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_REVISION = re.compile(r'^(down_revision|revision)\b[^=]*=\s*(None|"([^"]*)")', re.MULTILINE)


@cache
def head_revision() -> str:
    """The newest migration this code knows: the one no other migration revises."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for name, _, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            if value:
                (revisions if name == "revision" else revised).add(value)
    heads = revisions - revised
    if len(heads) != 1:
        raise ConfigError(f"the migrations in {MIGRATIONS} have heads {sorted(heads)}, not one")
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return None if rev is None else str(rev)
    except OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot reach the database {mask_url(str(engine.url.render_as_string(False)))}: "
            f"{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}"
        ) from exc


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def ensure_schema(engine: Engine, *, create: bool) -> None:
    """Check the schema is current. An empty database is migrated when `create` is true.

    A database at an older revision is never upgraded implicitly: that is an operator's
    decision (`allscreen db upgrade`), since other devices may still run the old code.
    """
    rev = current_revision(engine)
    head = head_revision()
    if rev == head:
        return
    if rev is None:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
        if create and not tables:
            upgrade(engine)
            return
        if not tables:
            raise SchemaMissing(
                "the database has no allscreen schema yet: run `allscreen db upgrade` "
                "or `allscreen submit` first"
            )
    raise SchemaOutdated(
        f"the database schema is at revision {rev or 'none'}, this allscreen needs {head}: "
        "run `allscreen db upgrade`"
    )


def dialect_insert(engine: Engine, table: Any) -> Any:
    """An INSERT that supports ON CONFLICT for the engine's dialect (PostgreSQL or SQLite)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def open_engine(settings: Settings, *, create: bool) -> Engine:
    """The results database, its schema checked (and created when empty and `create`)."""
    engine = get_engine(settings.database_url)
    ensure_schema(engine, create=create)
    return engine
