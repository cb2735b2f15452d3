"""Commands over a run: submit, status, resume, export and report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from allscreen.errors import ConfigError
from allscreen.settings import Settings, checked_settings
from cli.base import _sha256_option, cli
from cli.screening import policy_from_options, policy_options

_path_key_option = click.option(
    "--path-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Key file of hashed paths (default: ALLSCREEN_PATH_KEY_FILE); never stored.",
)


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
@click.option(
    "--store-paths",
    type=click.Choice(["absolute", "relative", "hashed"]),
    default="absolute",
    show_default=True,
    help="What the database keeps of each path: relative paths only, or keyed hashes only.",
)
@_path_key_option
@click.option(
    "--shard",
    metavar="K/N",
    help="Register only shard K of N of the files (N producers, same PATHS and --run).",
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
    store_paths: str,
    path_key: Path | None,
    shard: str | None,
    **policy: Any,
) -> None:
    """Register the images under PATHS in a run and enqueue them for classification.

    Several producers may feed one run at once (shards of one archive, or other archives):
    none sends an image another has sent."""
    from producer.cases import CaseNamer, read_manifest
    from producer.path_key import load_key
    from producer.shard import parse_shard
    from producer.stored_paths import store_for_submit
    from producer.submit import SetPolicy
    from producer.submit import submit as do_submit

    if case_level is not None and case_manifest is not None:
        raise ConfigError("give --case-level or --case-manifest, not both")
    cases = None
    if case_level is not None or case_manifest is not None:
        manifest = read_manifest(case_manifest) if case_manifest is not None else None
        cases = CaseNamer(level=case_level, manifest=manifest, roots=len(paths))
    given = policy_from_options(**policy)
    part = parse_shard(shard) if shard is not None else None
    s = checked_settings()
    key = None
    key_file = path_key or s.path_key_file
    if store_paths == "hashed" and key_file is not None:
        key, made = load_key(key_file, create=True)
        if made:
            click.echo(
                f"made a new path key in {key_file}: keep it with the archive, away from the "
                "database; without it the run's files cannot be found again",
                err=True,
            )
    stored = store_for_submit(store_paths, list(paths), key)  # type: ignore[arg-type]
    done = do_submit(
        list(paths),
        s,
        run_name=run_name,
        labels=labels,  # type: ignore[arg-type]
        pin=pin,
        cases=cases,
        policy=SetPolicy(*given) if given is not None else None,
        stored=stored,
        shard=part,
    )
    click.echo(done.run_name)
    if wait:
        _wait(s, done.run_name, paths[0] if store_paths != "absolute" else None, key_file)


def _wait(s: Settings, ref: str, root: Path | None = None, key_file: Path | None = None) -> None:
    from allscreen.db import open_engine
    from producer.submit import watch
    from readout.status import render_summary

    run, c, _ = watch(ref, s, root=root, key_file=key_file)
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
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    help="The archive root of a run submitted with --store-paths relative or hashed.",
)
@_path_key_option
def resume(run: str, wait: bool, root: Path | None, path_key: Path | None) -> None:
    """Re-enqueue every image of RUN that has no result."""
    from producer.submit import resume as do_resume

    s = checked_settings()
    key_file = path_key or s.path_key_file
    do_resume(run, s, root=root, key_file=key_file)
    if wait:
        _wait(s, run, root, key_file)


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

    s = checked_settings()
    engine = open_engine(s, create=False)
    if other is not None:
        from readout.compare import write_comparison

        write_comparison(engine, run, other, html_path)
        click.echo(f"wrote the comparison of runs {run} and {other} to {html_path}", err=True)
        return
    from readout.report import write_report

    write_report(engine, run, html_path, archive_root=s.archive_root)
    click.echo(f"wrote the report of run {run} to {html_path}", err=True)
