"""Entry point of `allscreen`: every part adds its commands, then expected errors print one line."""

from __future__ import annotations

import sys

import click

from allscreen.errors import AllscreenError
from cli import admin, broker, fleet, runs  # noqa: F401  (each adds its commands to the group)
from cli.base import cli
from cli.screening import policy, review
from reviewweb.command import serve

cli.add_command(policy)
cli.add_command(review)
cli.add_command(serve)

__all__ = ["cli", "main"]


def main() -> None:
    """Entry point: expected failures print one line and exit with their code."""
    try:
        cli.main(standalone_mode=False)
    except AllscreenError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo(
            "allscreen: interrupted; the run is saved: submit again or `resume` it", err=True
        )
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo(
            "allscreen: interrupted; the run is saved: submit again or `resume` it", err=True
        )
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
