"""`allscreen serve`: the review page for every run, loopback by default, auth elsewhere.

One server for all runs rather than `allscreen review RUN --serve`: reviewers move between
runs (a new archive, a rerun with another model), and an operator exposes one port with one
set of credentials and one TLS certificate, not one per run. The checks are `allscreen
flower`'s: a non-loopback address needs basic auth, whose passwords are given as salted
hashes only (`--hash-password` makes one).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from allscreen.defaults import DEFAULT_MONITOR_ADDRESS
from allscreen.errors import ConfigError
from reviewweb.security import Guard, check_exposure, hash_password, parse_credentials

DEFAULT_REVIEW_PORT = 8600  #: `allscreen serve`'s port: clear of Flower (5555) and metrics (9808)
ADDRESS_HELP = f"Address to serve on [{DEFAULT_MONITOR_ADDRESS}]; any other needs --basic-auth."
PORT_HELP = f"Port to serve on [{DEFAULT_REVIEW_PORT}]."


def _check_port(address: str, port: int) -> None:
    from worker.flower import check_port

    try:
        check_port(address, port)
    except ConfigError as exc:  # its sentence names Flower; this is the review page
        raise ConfigError(str(exc).replace("Flower", "the review page")) from exc


@click.command()
@click.option("--address", default=DEFAULT_MONITOR_ADDRESS, help=ADDRESS_HELP)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_REVIEW_PORT, help=PORT_HELP)
@click.option(
    "--basic-auth",
    envvar="REVIEW_BASIC_AUTH",
    help="user:HASH[,...] with HASH from --hash-password (or REVIEW_BASIC_AUTH).",
)
@click.option(
    "--ssl-certfile",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Serve over TLS with this certificate (PEM); cookies are then Secure.",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The certificate's private key (PEM).",
)
@click.option(
    "--hash-password",
    "hash_only",
    is_flag=True,
    help="Read a password (prompted, or one line on stdin) and print its hash for --basic-auth.",
)
def serve(
    address: str,
    port: int,
    basic_auth: str | None,
    ssl_certfile: Path | None,
    ssl_keyfile: Path | None,
    hash_only: bool,
) -> None:
    """Serve the review page: runs, worklists, cases, and verdicts by keyboard."""
    if hash_only:
        if sys.stdin.isatty():
            password = click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
        else:  # piped: one line, so a script never leaves the password in argv or a file
            password = sys.stdin.readline().rstrip("\r\n")
        click.echo(hash_password(password))
        return
    credentials = parse_credentials(basic_auth)
    check_exposure(address, credentials)
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise ConfigError("TLS needs both --ssl-certfile and --ssl-keyfile")
    import uvicorn

    from allscreen.db import open_engine
    from allscreen.settings import checked_settings
    from reviewweb.app import create_app

    s = checked_settings()
    engine = open_engine(s, create=False)
    _check_port(address, port)
    limits = (s.max_image_bytes, s.max_image_pixels)
    app = create_app(
        engine,
        guard=Guard(credentials),
        limits=limits,
        warm_cases=True,
        archive_root=s.archive_root,
    )
    scheme = "https" if ssl_certfile else "http"
    click.echo(f"serving the review page on {scheme}://{address}:{port}/", err=True)
    uvicorn.run(
        app,
        host=address,
        port=port,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
    )
