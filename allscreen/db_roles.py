"""PostgreSQL roles: an owner for the producer and read side, a device role for workers.

Roles are made by a command (`allscreen db roles`), not by a migration, because a migration
runs as whichever user upgrades the schema, often the owner itself, which cannot create roles
or hand out its tables; roles also carry passwords, which have no place in a migration; and
the grants must follow the schema, so the command re-applies them after every upgrade
(it upgrades first). It is idempotent: run it again after each `allscreen db upgrade`.

The device role gets exactly what `worker.batch.run_batch`, `worker.store.begin_batch`,
`allscreen.results`, `allscreen.models_seen`, `allscreen.refusals` and the schema check read
and write, column by column (`DEVICE_GRANTS`): no DELETE, no DDL, no table or column it does
not use. It cannot read an image's path or location, runs, cases, policies or verdicts, so
nothing it reads ties a result to a patient. It can read result rows (labels, scores): the
result upsert's `ON CONFLICT DO UPDATE SET c = excluded.c` needs SELECT on every column it
sets, which PostgreSQL grants per column, not per row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from allscreen.db import upgrade
from allscreen.errors import ConfigError, DatabaseUnavailable
from allscreen.results import ResultRow
from allscreen.schema import Base

OWNER_ROLE = "allscreen_owner"  #: the default owner (producer, read side, migrations)
DEVICE_ROLE = "allscreen_device"  #: the default role of devices (workers)

RESULT_COLUMNS = tuple(f.name for f in fields(ResultRow))  #: what the result upsert writes
_RESULT_WRITES = ", ".join(RESULT_COLUMNS)
_RESULT_UPDATES = ", ".join(c for c in RESULT_COLUMNS if c not in ("run_id", "image_id"))
_MODEL_COLUMNS = "sha256, name, version, labels, thresholds, first_seen"
_REFUSAL_COLUMNS = "run_id, device, model_sha256, model_file, batches, first_at, last_at"

#: (privilege and columns, table, why): everything the device role is granted.
DEVICE_GRANTS: tuple[tuple[str, str, str], ...] = (
    ("SELECT", "alembic_version", "the schema check reads the revision"),
    ("SELECT (id, deliveries, attempts_alone)", "images", "begin_batch counts deliveries"),
    ("UPDATE (deliveries, attempts_alone)", "images", "begin_batch counts deliveries"),
    # PostgreSQL lets `ON CONFLICT DO UPDATE SET c = excluded.c` read c only with SELECT on
    # c, and SQLAlchemy's inserts end in `RETURNING id`: the upsert needs SELECT on them all.
    (f"SELECT (id, {_RESULT_WRITES})", "results", "skip done images; the upsert"),
    (f"INSERT ({_RESULT_WRITES})", "results", "the result upsert"),
    (f"UPDATE ({_RESULT_UPDATES})", "results", "the result upsert"),
    ("SELECT (sha256)", "models", "record_model's ON CONFLICT"),
    (f"INSERT ({_MODEL_COLUMNS})", "models", "record_model"),
    (f"SELECT (id, {_REFUSAL_COLUMNS})", "refusals", "record_refusal's upsert"),
    (f"INSERT ({_REFUSAL_COLUMNS})", "refusals", "record_refusal"),
    ("UPDATE (batches, last_at, model_file)", "refusals", "record_refusal"),
)
#: Tables whose `id` sequence the device draws from when it inserts.
DEVICE_SEQUENCES = ("results", "refusals")


@dataclass(frozen=True, slots=True)
class RolePlan:
    """The roles to create or update, with their passwords (None: leave / set none)."""

    owner: str
    device: str
    owner_password: str | None = None
    device_password: str | None = None


def _ident(conn: Connection, name: str) -> str:
    quoted = conn.exec_driver_sql("SELECT quote_ident(%(n)s)", {"n": name}).scalar()
    return str(quoted)


def _ensure_role(conn: Connection, name: str, password: str | None) -> str:
    role = _ident(conn, name)
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}).first()
    if exists is None:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    # Whatever it was before, it holds no rights beyond what is granted below.
    conn.exec_driver_sql(
        f"ALTER ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    )
    if password is not None:
        literal = conn.exec_driver_sql("SELECT quote_literal(%(p)s)", {"p": password}).scalar()
        conn.exec_driver_sql(f"ALTER ROLE {role} PASSWORD {literal}")
    return role


def _tables() -> list[str]:
    return ["alembic_version", *sorted(Base.metadata.tables)]


def create_roles(engine: Engine, plan: RolePlan) -> None:
    """Upgrade the schema, then create or update both roles and their grants, in one go.

    `engine` connects as a superuser (or a role that may create roles and owns the tables).
    """
    if engine.dialect.name != "postgresql":
        raise ConfigError("database roles exist only on PostgreSQL (SQLite has no users)")
    if plan.owner == plan.device:
        raise ConfigError("the owner and the device role must differ")
    try:
        upgrade(engine)
        _grant(engine, plan)
    except OperationalError as exc:
        raise DatabaseUnavailable(f"cannot reach the database: {_first_line(exc)}") from exc
    except DBAPIError as exc:
        raise ConfigError(
            f"cannot set up the roles (connect as a superuser): {_first_line(exc)}"
        ) from exc


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig or exc).strip().splitlines()[0]


def _grant(engine: Engine, plan: RolePlan) -> None:
    with engine.begin() as conn:
        database = _ident(conn, str(conn.exec_driver_sql("SELECT current_database()").scalar()))
        owner = _ensure_role(conn, plan.owner, plan.owner_password)
        device = _ensure_role(conn, plan.device, plan.device_password)
        # Nobody but the owner creates objects in the schema (PostgreSQL < 15 let everyone).
        conn.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conn.exec_driver_sql(f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {owner}")
        conn.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}")
        conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {database} TO {device}")
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {device}")
        for table in _tables():
            name = _ident(conn, table)
            conn.exec_driver_sql(f"ALTER TABLE {name} OWNER TO {owner}")
            conn.exec_driver_sql(f"REVOKE ALL ON TABLE {name} FROM {device}")
            for column in _column_names(conn, table):
                conn.exec_driver_sql(
                    f"REVOKE ALL ({_ident(conn, column)}) ON TABLE {name} FROM {device}"
                )
        for privilege, table, _why in DEVICE_GRANTS:
            conn.exec_driver_sql(f"GRANT {privilege} ON TABLE {table} TO {device}")
        for table in DEVICE_SEQUENCES:
            sequence = conn.execute(
                text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}
            ).scalar()
            if sequence is not None:
                conn.exec_driver_sql(f"GRANT USAGE ON SEQUENCE {sequence} TO {device}")


def _column_names(conn: Connection, table: str) -> list[str]:
    rows = conn.execute(
        text(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) "
            "AND attnum > 0 AND NOT attisdropped"
        ),
        {"t": table},
    ).all()
    return [str(r[0]) for r in rows]
