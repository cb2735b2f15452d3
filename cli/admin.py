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


@cli.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--run", "run_name", default="demo", show_default=True)
@click.option("--workers", type=int, default=None, help="Worker processes (default: cores).")
def demo(path: Path | None, run_name: str, workers: int | None) -> None:
    """Screen a sample archive end to end on embedded defaults (Redis, SQLite, local workers)."""
    from cli.demo import run_demo

    run_demo(checked_settings(), path=path, run_name=run_name, workers=workers)
