"""Commands for screening decisions: `policy show|set|fit` and `review` (queue and verdicts)."""

from __future__ import annotations

import csv
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click

from allscreen.errors import PolicyError
from allscreen.policy import ScreeningPolicy, load_policy_file
from allscreen.settings import checked_settings

F = TypeVar("F", bound=Callable[..., Any])


def policy_options(f: F) -> F:
    """`--policy FILE` or the policy's parts as flags (shared by `submit` and `policy set`)."""
    options = [
        click.option(
            "--policy",
            "policy_file",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Screening policy as JSON (as `policy fit --save` writes it).",
        ),
        click.option(
            "--negative-label",
            "negative_labels",
            multiple=True,
            help="A label that means negative (repeat for several), e.g. Benign.",
        ),
        click.option(
            "--min-negative-score",
            type=click.FloatRange(0, 1),
            help="Call an image negative only when its negative score is at least this.",
        ),
        click.option(
            "--min-confidence",
            type=click.FloatRange(0, 1),
            help="Send an image to review when its top score is below this.",
        ),
        click.option(
            "--min-positive-images",
            type=click.IntRange(min=1),
            help="Positive images that make a case positive (K, default 1).",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def policy_from_options(
    policy_file: Path | None,
    negative_labels: tuple[str, ...],
    min_negative_score: float | None,
    min_confidence: float | None,
    min_positive_images: int | None,
) -> tuple[ScreeningPolicy, str] | None:
    """The policy the options give (with its source, for the record), or None for none."""
    flags = bool(negative_labels) or min_negative_score is not None
    if policy_file is not None and (flags or min_confidence is not None):
        raise PolicyError("give either --policy FILE or the policy's flags, not both")
    if policy_file is not None:
        return load_policy_file(policy_file), f"file {policy_file}"
    if not flags and min_confidence is None and min_positive_images is None:
        return None
    if not negative_labels or min_negative_score is None:
        raise PolicyError(
            "a policy from flags needs --negative-label LABEL and --min-negative-score X"
        )
    policy = ScreeningPolicy(
        tuple(negative_labels),
        min_negative_score,
        min_confidence if min_confidence is not None else 0.0,
        min_positive_images or 1,
    )
    return policy, "command-line flags"


def _open_out(path: Path) -> TextIO:
    return sys.stdout if str(path) == "-" else path.open("w", newline="", encoding="utf-8")


@click.group()
def policy() -> None:
    """Screening policies: show, set (recorded, never replacing results), fit on known truth."""


@policy.command("show")
@click.argument("run")
def policy_show(run: str) -> None:
    """The policy in force for RUN, and every policy set on it before."""
    from allscreen.db import open_engine
    from allscreen.policy_store import policy_history, policy_in_force
    from allscreen.runs import find_run

    engine = open_engine(checked_settings(), create=False)
    run_row = find_run(engine, run)
    in_force = policy_in_force(engine, run_row)
    if in_force is None:
        click.echo(f"run {run_row.name}: no screening policy (per-image labels only)")
    else:
        click.echo(f"run {run_row.name}: {in_force.policy.describe()}  [{in_force.source}]")
        click.echo(in_force.policy.to_json())
    for policy_id, when, source, body in policy_history(engine, run_row.id):
        click.echo(f"  #{policy_id} {when:%Y-%m-%d %H:%M} {source}: {body}")


@policy.command("set")
@click.argument("run")
@policy_options
def policy_set(run: str, **options: Any) -> None:
    """Set RUN's policy from now on; calls are recomputed from the stored scores."""
    from allscreen.db import open_engine
    from allscreen.models_seen import model_of_run
    from allscreen.policy_store import set_policy
    from allscreen.runs import find_run

    given = policy_from_options(**options)
    if given is None:
        raise PolicyError("give --policy FILE, or --negative-label and --min-negative-score")
    engine = open_engine(checked_settings(), create=False)
    run_row = find_run(engine, run)
    model = model_of_run(engine, run_row.id, run_row.model_sha256)
    new_id = set_policy(
        engine, run_row.id, given[0], source=given[1], labels=list(model.labels) if model else []
    )
    click.echo(f"run {run_row.name}: policy #{new_id} in force: {given[0].describe()}")


@policy.command("fit")
@click.argument("run")
@click.option(
    "--sensitivity",
    type=click.FloatRange(0.5, 1, max_open=True),
    required=True,
    help="Share of positive images that must not be called negative, e.g. 0.995.",
)
@click.option("--negative-label", "negative_labels", multiple=True, help="Default: the run's.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), help="Default: the run's.")
@click.option("--min-positive-images", type=click.IntRange(min=1), help="Default: the run's.")
@click.option("--save", type=click.Path(path_type=Path, dir_okay=False), help="Write it as JSON.")
@click.option("--apply", is_flag=True, help="Also make it RUN's policy.")
def policy_fit(
    run: str,
    sensitivity: float,
    negative_labels: tuple[str, ...],
    min_confidence: float | None,
    min_positive_images: int | None,
    save: Path | None,
    apply: bool,
) -> None:
    """Fit the loosest policy keeping SENSITIVITY on RUN's images with ground truth or verdicts."""
    from allscreen.db import open_engine
    from allscreen.policy_store import policy_in_force, set_policy
    from allscreen.runs import find_run
    from readout.policy_fit import fit_policy

    engine = open_engine(checked_settings(), create=False)
    run_row = find_run(engine, run)
    base = policy_in_force(engine, run_row)
    labels = negative_labels or (base.policy.negative_labels if base else ())
    if not labels:
        raise PolicyError(f"run {run_row.name} has no policy: name --negative-label LABEL")
    fit = fit_policy(
        engine,
        run_row,
        target=sensitivity,
        negative_labels=tuple(labels),
        min_confidence=min_confidence
        if min_confidence is not None
        else (base.policy.min_confidence if base else 0.0),
        min_positive_images=min_positive_images or (base.policy.min_positive_images if base else 1),
    )
    for line in fit.lines():
        click.echo(line)
    if save is not None:
        save.write_text(fit.policy.to_json() + "\n", encoding="utf-8")
        click.echo(f"saved to {save} (apply to a run: allscreen policy set RUN --policy {save})")
    if apply:
        source = f"fitted on run {run_row.name} for sensitivity {sensitivity}"
        set_policy(engine, run_row.id, fit.policy, source=source, labels=[])
        click.echo(f"run {run_row.name}: the fitted policy is now in force")


@click.command()
@click.argument("run")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Worklist as CSV.")
@click.option("--set", "set_", nargs=2, metavar="PATH|SHA256 LABEL", help="Record a verdict.")
@click.option(
    "--import",
    "import_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Record verdicts from a CSV (path or sha256, label or verdict, reviewer, note).",
)
@click.option("--by", "reviewer", help="Who gives the verdicts (default: your user name).")
@click.option("--note", help="A note kept with a --set verdict.")
def review(
    run: str,
    csv_path: Path | None,
    set_: tuple[str, str] | None,
    import_path: Path | None,
    reviewer: str | None,
    note: str | None,
) -> None:
    """RUN's review queue (most urgent first), or record reviewers' verdicts."""
    from allscreen.db import open_engine
    from allscreen.runs import find_run
    from readout.review_output import print_queue, write_worklist
    from readout.verdicts import VerdictInput, read_verdict_csv, record_verdicts

    engine = open_engine(checked_settings(), create=False)
    run_row = find_run(engine, run)
    who = reviewer or getpass.getuser()
    if set_ is not None or import_path is not None:
        items: list[VerdictInput] = []
        skipped = 0
        if set_ is not None:
            items.append(VerdictInput(set_[0], set_[1], who, note))
        if import_path is not None:
            more, skipped = read_verdict_csv(import_path, reviewer=who)
            items.extend(more)
        n = record_verdicts(engine, run_row, items)
        click.echo(
            f"recorded {n} verdict(s) on run {run_row.name}"
            + (f"; {skipped} row(s) without a label skipped" if skipped else ""),
            err=True,
        )
        return
    if csv_path is not None:
        out = _open_out(csv_path)
        try:
            n = write_worklist(engine, run_row, csv.writer(out))
        finally:
            if out is not sys.stdout:
                out.close()
        click.echo(f"wrote {n} images to review to {csv_path}", err=True)
        return
    print_queue(engine, run_row, click.echo)
