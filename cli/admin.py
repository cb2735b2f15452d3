"""Administrative commands: the database schema, and the demo on embedded defaults."""

from __future__ import annotations

from pathlib import Path

import click

from allscreen.settings import checked_settings
from cli.base import cli


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the results schema to this version's newest migration."""
    from allscreen.db import get_engine, upgrade

    upgrade(get_engine(checked_settings().database_url))
    click.echo("database schema is current", err=True)


@db.command("roles")
@click.option("--owner", default=None, help="Owner role (producer, read side) [allscreen_owner].")
@click.option("--device", default=None, help="Device role (workers) [allscreen_device].")
@click.option(
    "--owner-password",
    envvar="OWNER_DB_PASSWORD",
    help="Set the owner's password (or OWNER_DB_PASSWORD; default: leave it).",
)
@click.option(
    "--device-password",
    envvar="DEVICE_DB_PASSWORD",
    help="Set the device role's password (or DEVICE_DB_PASSWORD; default: leave it).",
)
def db_roles(
    owner: str | None,
    device: str | None,
    owner_password: str | None,
    device_password: str | None,
) -> None:
    """Upgrade the schema, then create or update the owner and device roles (PostgreSQL).

    Run it as a superuser (ALLSCREEN_DATABASE_URL), and again after every `db upgrade`. The
    owner role owns the tables; the device role may only do what a worker does.
    """
    from allscreen.db import get_engine
    from allscreen.db_roles import DEVICE_ROLE, OWNER_ROLE, RolePlan, create_roles

    plan = RolePlan(
        owner or OWNER_ROLE, device or DEVICE_ROLE, owner_password or None, device_password or None
    )
    create_roles(get_engine(checked_settings().database_url), plan)
    click.echo(f"roles ready: owner {plan.owner}, device {plan.device}", err=True)


@cli.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--run", "run_name", default="demo", show_default=True)
@click.option("--workers", type=int, default=None, help="Worker processes (default: cores).")
def demo(path: Path | None, run_name: str, workers: int | None) -> None:
    """Screen a sample archive end to end on embedded defaults (Redis, SQLite, local workers)."""
    from cli.demo import run_demo

    run_demo(checked_settings(), path=path, run_name=run_name, workers=workers)
