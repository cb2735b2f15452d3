"""Does this device run with owner credentials? `worker --check` warns when it does.

A device on a lab bench should hold the device role and the devices' Redis user, which can
do only what a worker needs (`allscreen db roles`, `allscreen broker acl`). These checks read
the rights of the credentials in use, without changing anything, and name what is too much.
"""

from __future__ import annotations

from typing import Any

import redis
from sqlalchemy import Engine, text

_PG_RIGHTS = text(
    """
    SELECT current_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
           has_schema_privilege(n.oid, 'CREATE'),
           pg_has_role(c.relowner, 'USAGE'),
           has_table_privilege(c.oid, 'DELETE'),
           has_column_privilege(to_regclass('images'), 'path', 'SELECT')
    FROM pg_roles r, pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE r.rolname = current_user AND c.oid = to_regclass('results')
    """
)
_PG_NAMES = (
    "is a superuser",
    "can create roles",
    "can create databases",
    "can create tables",
    "owns the tables",
    "can delete results",
    "can read image paths",
)


def database_owner_rights(engine: Engine) -> tuple[str, list[str]]:
    """The database user, and what it may do beyond a device's grant (PostgreSQL only)."""
    if engine.dialect.name != "postgresql":
        return "", []
    with engine.connect() as conn:
        row = conn.execute(_PG_RIGHTS).first()
    if row is None:  # no results table: the schema check reports that
        return "", []
    user, *held = row
    return str(user), [name for name, has in zip(_PG_NAMES, held, strict=True) if has]


def broker_owner_rights(client: redis.Redis[Any]) -> tuple[str, list[str]]:
    """The broker user's name, and what it may do beyond the devices' ACL user.

    `ACL WHOAMI` names the user (a Redis without ACLs has only `default`); a harmless
    `CONFIG GET` tells an owner from a device, since the devices' user may not run CONFIG
    (nor FLUSHALL, KEYS or MONITOR, which an owner user allowed CONFIG may run too).
    """
    try:
        name = client.acl_whoami()
        user = name.decode() if isinstance(name, bytes) else str(name)
    except redis.ResponseError:
        user = "default"  # before Redis 6, or ACL WHOAMI denied
    rights = []
    if user == "default":
        rights.append("is the default user")
    try:
        client.config_get("maxmemory")
    except redis.ResponseError:
        pass
    else:
        rights.append("may run CONFIG, FLUSHALL, KEYS and MONITOR")
    return user, rights


def owner_warning(what: str, user: str, rights: list[str], fix: str) -> str:
    """The warning a check line carries when a device holds owner credentials."""
    return f"; warning: the {what} user {user} {', '.join(rights)}: a device should use {fix}"
