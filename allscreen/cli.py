"""The `allscreen` command line: thin commands over the producer and worker functions."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from allscreen import defaults
from allscreen.errors import AllscreenError, ChecksFailed, ConfigError, SchemaMissing
from allscreen.settings import Settings, checked_settings, get_settings
from readout.screening_cli import policy, policy_from_options, policy_options, review

F = TypeVar("F", bound=Callable[..., Any])


def _sha256_option(value: str | None) -> str | None:
    """A model pin: 64 hex digits (as `allscreen worker --check` and `devices` print it)."""
    if value is None:
        return None
    pin = value.strip().lower()
    if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
        raise ConfigError(
            f"--model-sha256 needs the 64-hex-digit sha256 of a model file, got {value!r} "
            "(`allscreen worker --check` and `allscreen devices --json` print it)"
        )
    return pin


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Screen blood-smear archives for ALL on a fleet of Edge Impulse devices."""


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--run", "run_name", help="Run name; submitting to it again only adds new images.")
@click.option("--wait", is_flag=True, help="Show live progress until every image has a result.")
@click.option(
    "--labels",
    type=click.Choice(["folder", "filename", "none"]),
    default="none",
    show_default=True,
    help="Where ground truth comes from, if anywhere.",
)
@click.option(
    "--model-sha256",
    "pin",
    callback=lambda _ctx, _param, value: _sha256_option(value),
    help="Only a worker holding this model (sha256 of its file) may classify.",
)
@click.option(
    "--case-level",
    type=click.IntRange(min=1),
    help="The folder this many levels below PATH names each image's case.",
)
@click.option(
    "--case-manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="CSV with columns path,case[,patient] (paths relative to PATH).",
)
@policy_options
def submit(
    paths: tuple[Path, ...],
    run_name: str | None,
    wait: bool,
    labels: str,
    pin: str | None,
    case_level: int | None,
    case_manifest: Path | None,
    **policy: Any,
) -> None:
    """Register the images under PATHS in a run and enqueue them for classification."""
    from producer.cases import CaseNamer, read_manifest
    from producer.submit import SetPolicy
    from producer.submit import submit as do_submit

    if case_level is not None and case_manifest is not None:
        raise ConfigError("give --case-level or --case-manifest, not both")
    cases = None
    if case_level is not None or case_manifest is not None:
        manifest = read_manifest(case_manifest) if case_manifest is not None else None
        cases = CaseNamer(level=case_level, manifest=manifest, roots=len(paths))
    given = policy_from_options(**policy)
    s = checked_settings()
    done = do_submit(
        list(paths),
        s,
        run_name=run_name,
        labels=labels,  # type: ignore[arg-type]
        pin=pin,
        cases=cases,
        policy=SetPolicy(*given) if given is not None else None,
    )
    click.echo(done.run_name)
    if wait:
        _wait(s, done.run_name)


def _wait(s: Settings, ref: str) -> None:
    from allscreen.db import open_engine
    from producer.submit import watch
    from readout.status import render_summary

    run, c, _ = watch(ref, s)
    click.echo(render_summary(open_engine(s, create=False), run, c))


@cli.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(run: str, as_json: bool) -> None:
    """Counts, accuracy and per-device latency of RUN."""
    from allscreen.db import open_engine
    from allscreen.runs import find_run
    from readout.status import render_status, status_dict

    engine = open_engine(checked_settings(), create=False)
    data = status_dict(engine, find_run(engine, run))
    click.echo(json.dumps(data, indent=2) if as_json else render_status(data))


@cli.command()
@click.argument("run")
@click.option("--wait", is_flag=True, help="Show live progress until every image has a result.")
def resume(run: str, wait: bool) -> None:
    """Re-enqueue every image of RUN that has no result."""
    from producer.submit import resume as do_resume

    s = checked_settings()
    do_resume(run, s)
    if wait:
        _wait(s, run)


@cli.command()
@click.argument("run")
@click.option(
    "--csv",
    "csv_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the CSV ('-' for stdout).",
)
@click.option("--cases", "per_case", is_flag=True, help="One row per case instead of per image.")
def export(run: str, csv_path: Path, per_case: bool) -> None:
    """Write one CSV row per image (or per case) of RUN."""
    from allscreen.db import open_engine
    from allscreen.runs import find_run
    from readout.case_export import export_cases_csv
    from readout.csv_export import export_csv

    engine = open_engine(checked_settings(), create=False)
    run_row = find_run(engine, run)
    write = export_cases_csv if per_case else export_csv
    if str(csv_path) == "-":
        write(engine, run_row, sys.stdout)
        return
    with csv_path.open("w", newline="", encoding="utf-8") as out:
        n = write(engine, run_row, out)
    click.echo(f"wrote {n} rows to {csv_path}", err=True)


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
    from allscreen.demo import run_demo

    run_demo(checked_settings(), path=path, run_name=run_name, workers=workers)


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


@cli.command()
@click.argument("run")
@click.option(
    "--html",
    "html_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to write the report (one self-contained HTML file).",
)
@click.option("--compare", "other", metavar="RUN_B", help="Compare RUN with RUN_B instead.")
def report(run: str, html_path: Path, other: str | None) -> None:
    """Write RUN's report: summary, calls, cases, review, accuracy, latency, failures."""
    from allscreen.db import open_engine

    engine = open_engine(checked_settings(), create=False)
    if other is not None:
        from readout.compare import write_comparison

        write_comparison(engine, run, other, html_path)
        click.echo(f"wrote the comparison of runs {run} and {other} to {html_path}", err=True)
        return
    from readout.report import write_report

    write_report(engine, run, html_path)
    click.echo(f"wrote the report of run {run} to {html_path}", err=True)


cli.add_command(policy)
cli.add_command(review)


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
