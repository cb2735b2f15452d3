"""`allscreen broker acl`: the Redis ACL lines that give devices only what a worker needs."""

from __future__ import annotations

import secrets
import sys

import click

from allscreen.broker_acl import DEVICE_USER, broker_db, device_acl_line
from allscreen.errors import ConfigError
from allscreen.settings import checked_settings
from cli.base import cli


@cli.group()
def broker() -> None:
    """Broker (Redis) administration."""


@broker.command("acl")
@click.option("--user", default=DEVICE_USER, show_default=True, help="The devices' ACL user.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the devices' password from stdin (default: make a new one, shown on stderr).",
)
def broker_acl(user: str, password_stdin: bool) -> None:
    """Print the ACL-file line of the devices' Redis user (for ALLSCREEN_QUEUE and the URL's db).

    Install it in Redis's ACL file (`aclfile`), or apply it to a running server with
    `redis-cli ACL SETUSER` followed by the words after `user`. The password is stored as its
    sha256. The producer, Flower and the read side keep an owner user. Only the line goes to
    stdout (an ACL file has no comments); the commands allowed, and why, are listed in
    `allscreen.broker_acl`.
    """
    settings = checked_settings()
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigError("no password on stdin")
    else:
        password = secrets.token_urlsafe(24)
        click.echo(
            f"new password of Redis user {user}: {password}\n"
            f"(devices: ALLSCREEN_BROKER_URL=redis://{user}:PASSWORD@HOST:6379/"
            f"{broker_db(settings.effective_broker_url)})",
            err=True,
        )
    click.echo(
        device_acl_line(
            user,
            password,
            queue=settings.queue,
            db=broker_db(settings.effective_broker_url),
        )
    )
