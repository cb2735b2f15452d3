"""Human-readable run summaries for `status`, `submit --wait` and `demo`.

Every figure comes from the write-time tallies (readout/tally_reads.py), so `status` of a run
of ten million images reads a few thousand rows; p50 and p95 are read from log-spaced
buckets and are within 7.5 % of the exact percentiles.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from allscreen.runs import Counts
from allscreen.schema import Run
from readout.queries import device_stats, run_span
from readout.run_models import model_lines, model_status
from readout.screening_status import screening_lines, screening_status
from readout.tables import table_text
from readout.tally_reads import label_pairs, totals


def accuracy(engine: Engine, run_id: int) -> tuple[int, int]:
    """(correct, judged): done images whose ground truth is known (from the label tallies)."""
    pairs = label_pairs(engine, run_id)
    judged = sum(n for (truth, _), n in pairs.items() if truth is not None)
    correct = sum(n for (truth, label), n in pairs.items() if truth is not None and truth == label)
    return correct, judged


def status_dict(engine: Engine, run: Run) -> dict[str, Any]:
    """The run's status as JSON-ready data (the `status --json` contract)."""
    t = totals(engine, run.id)
    c = Counts(t.images, t.done, t.failed)
    span = run_span(engine, run.id)
    correct, judged = accuracy(engine, run.id)
    return {
        "run": run.name,
        "id": run.id,
        "total": c.total,
        "done": c.done,
        "failed": c.failed,
        "pending": c.pending,
        "accuracy": (correct / judged) if judged else None,
        "seconds": span,
        "images_per_second": (c.done + c.failed) / span if span else None,
        "devices": [
            {
                "device": d.device,
                "done": d.done,
                "failed": d.failed,
                "p50_ms": d.p50_ms,
                "p95_ms": d.p95_ms,
            }
            for d in device_stats(engine, run.id)
        ],
        **model_status(engine, run),
        "screening": screening_status(engine, run),
    }


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def render_status(data: dict[str, Any]) -> str:
    """`status` as a short table."""
    lines = [
        f"run {data['run']} (id {data['id']})",
        f"  total {data['total']}   done {data['done']}   failed {data['failed']}   "
        f"pending {data['pending']}",
    ]
    if data["seconds"]:
        lines.append(
            f"  first batch queued to last result: {data['seconds']:.1f} s "
            f"({data['images_per_second']:.0f} images/s)"
        )
    if data["accuracy"] is not None:
        lines.append(f"  accuracy against ground truth: {data['accuracy']:.2%}")
    lines.extend(model_lines(data))
    lines.extend(screening_lines(data["screening"]))
    if data["devices"]:
        lines.append(
            table_text(
                ["device", "done", "failed", "p50 ms", "p95 ms"],
                (
                    [d["device"], d["done"], d["failed"], _ms(d["p50_ms"]), _ms(d["p95_ms"])]
                    for d in data["devices"]
                ),
                right=["done", "failed", "p50 ms", "p95 ms"],
                indent=2,
            )
        )
    return "\n".join(lines)


def render_summary(engine: Engine, run: Run, c: Counts) -> str:
    """The closing summary of a run that was waited for."""
    head = f"{c.done + c.failed} images: {c.done} done, {c.failed} failed"
    return head + "\n" + render_status(status_dict(engine, run))
