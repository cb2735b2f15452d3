"""Commands for the fleet: worker, devices, flower and metrics."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import click

from allscreen import defaults
from allscreen.errors import ChecksFailed, SchemaMissing
from allscreen.settings import checked_settings, get_settings
from cli.base import cli


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    help="Worker processes (default: one per core; one model each).",
)
@click.option("--device", help="Device name recorded with every result (default: host name).")
@click.option("--check", is_flag=True, help="Only run the start-up checks, then exit 0 or 1.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    concurrency: int | None, device: str | None, check: bool, celery_args: tuple[str, ...]
) -> None:
    """Start a Celery worker with allscreen's configuration (extra args go to Celery)."""
    from worker.preflight import run_checks

    if device:
        os.environ["ALLSCREEN_DEVICE"] = device
        get_settings.cache_clear()
    s = checked_settings()
    name = s.device or socket.gethostname()
    checks = run_checks(s, lambda line: click.echo(line, err=True))
    if check and checks.failures:
        raise ChecksFailed(f"{len(checks.failures)} of {checks.total} device checks failed")
    if checks.failures and all(isinstance(f, SchemaMissing) for f in checks.failures):
        # Devices often boot before the server side: wait for the schema instead of dying.
        from worker.preflight import wait_for_schema

        wait_for_schema(s, lambda line: click.echo(line, err=True))
    elif checks.failures:
        raise checks.failures[0]
    if check:
        return
    from worker.app import app
    from worker.heartbeat import announce

    if checks.model is not None:
        announce(checks.model)

    argv = [
        "worker",
        "--hostname",
        f"{name}@%h",
        "--queues",
        s.queue,
        "--concurrency",
        str(concurrency or os.cpu_count() or 1),
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
        *celery_args,
    ]
    app.worker_main(argv)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def devices(as_json: bool) -> None:
    """The devices online now: model, concurrency, and last minute's throughput and p50."""
    from allscreen.db import open_engine
    from readout.devices import device_rows, devices_json, render_devices

    s = checked_settings()
    rows = device_rows(s, open_engine(s, create=False))
    if as_json:
        click.echo(json.dumps(devices_json(rows), indent=2))
    else:
        click.echo(render_devices(rows, s.queue))


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--address",
    default=defaults.DEFAULT_MONITOR_ADDRESS,
    show_default=True,
    help="Address to serve on.",
)
@click.option("--port", type=int, default=defaults.DEFAULT_FLOWER_PORT, show_default=True)
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=Path(defaults.DEFAULT_FLOWER_DB),
    show_default=True,
    help="Flower's state file (kept with --persistent).",
)
@click.option(
    "--basic-auth", envvar="FLOWER_BASIC_AUTH", help="user:password[,...] (or FLOWER_BASIC_AUTH)."
)
@click.option("--auth", envvar="FLOWER_AUTH", help="OAuth: e-mail pattern of users let in.")
@click.option("--auth-provider", envvar="FLOWER_AUTH_PROVIDER", help="OAuth login handler class.")
@click.option("--oauth2-key", envvar="FLOWER_OAUTH2_KEY")
@click.option("--oauth2-secret", envvar="FLOWER_OAUTH2_SECRET")
@click.option("--oauth2-redirect-uri", envvar="FLOWER_OAUTH2_REDIRECT_URI")
@click.option("--control", is_flag=True, help="Allow worker shutdown and pool changes from Flower.")
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(
    address: str,
    port: int,
    db: Path,
    basic_auth: str | None,
    auth: str | None,
    auth_provider: str | None,
    oauth2_key: str | None,
    oauth2_secret: str | None,
    oauth2_redirect_uri: str | None,
    control: bool,
    flower_args: tuple[str, ...],
) -> None:
    """Serve Flower for allscreen's workers: loopback by default, auth required elsewhere."""
    from worker.flower import FlowerOptions, OAuth, parse_basic_auth, run_flower

    checked_settings()  # a bad ALLSCREEN_* setting is one line here, not a traceback in Flower
    oauth = OAuth(auth, auth_provider, oauth2_key, oauth2_secret, oauth2_redirect_uri)
    run_flower(
        FlowerOptions(address, port, db, parse_basic_auth(basic_auth), oauth, control, flower_args)
    )


@cli.command()
@click.option(
    "--address",
    default=defaults.DEFAULT_MONITOR_ADDRESS,
    show_default=True,
    help="Address to serve on.",
)
@click.option("--port", type=int, default=defaults.DEFAULT_METRICS_PORT, show_default=True)
@click.option(
    "--window",
    type=click.FloatRange(min=1),
    default=defaults.DEFAULT_RATE_WINDOW,
    show_default=True,
    help="Seconds over which allscreen_images_per_second is measured.",
)
def metrics(address: str, port: int, window: float) -> None:
    """Serve Prometheus metrics: per-device results and latency (SQL), queue depth (Redis)."""
    import redis

    from allscreen.db import open_engine
    from readout.metrics import FleetCollector, serve_metrics

    s = checked_settings()
    engine = open_engine(s, create=False)
    client = redis.Redis.from_url(
        s.effective_broker_url, socket_connect_timeout=2, socket_timeout=2
    )
    click.echo(f"serving metrics on http://{address}:{port}/metrics", err=True)
    serve_metrics(
        FleetCollector(engine, client, s.queue, window=window), address=address, port=port
    )
