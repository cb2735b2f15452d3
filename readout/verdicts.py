"""Reviewer verdicts: recorded in their own append-only table, never over a result.

A verdict names an image of the run (by its relative path or sha256) and one of the run's
model labels, or `unsure`. It keeps who, when, a note, and what the model said at that moment
(label, confidence and call under the policy then in force). A later verdict on the same image
supersedes the earlier one for the final call; both stay in the table.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, or_, select

from allscreen.errors import ReviewError
from allscreen.models_seen import model_of_run
from allscreen.policy import UNSURE
from allscreen.policy_store import policy_in_force
from allscreen.schema import Image, Run, Verdict
from readout.calls import image_calls

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class VerdictInput:
    """One verdict to record: the image (path or sha256), the label, who, and a note."""

    ref: str
    label: str
    reviewer: str
    note: str | None = None


def allowed_labels(engine: Engine, run: Run) -> list[str]:
    """The labels a verdict on this run may name: its model's, and `unsure`."""
    model = model_of_run(engine, run.id, run.model_sha256)
    if model is None:
        raise ReviewError(
            f"run {run.name} has no classified image yet, so its model's labels are unknown"
        )
    return [*model.labels, UNSURE]


def _resolve(engine: Engine, run: Run, refs: list[str]) -> dict[str, int]:
    """Image ids for paths or sha256 sums of the run; an unknown or ambiguous one is refused."""
    want = sorted(set(refs))
    shas = [r.lower() for r in want if len(r) == 64 and set(r.lower()) <= _HEX]
    found: dict[str, list[int]] = {}
    with engine.connect() as conn:
        for chunk in range(0, len(want), 500):
            part = want[chunk : chunk + 500]
            rows = conn.execute(
                select(Image.id, Image.path, Image.sha256).where(
                    Image.run_id == run.id,
                    or_(Image.path.in_(part), Image.sha256.in_([s for s in shas if s in part])),
                )
            ).all()
            for image_id, path, sha in rows:
                for key in {path, sha}:
                    found.setdefault(key, []).append(int(image_id))
    out: dict[str, int] = {}
    for ref in want:
        ids = found.get(ref) or found.get(ref.lower())
        if not ids:
            raise ReviewError(f"run {run.name} has no image with path or sha256 {ref!r}")
        if len(set(ids)) > 1:
            raise ReviewError(f"{ref!r} names {len(set(ids))} images of run {run.name}: use sha256")
        out[ref] = ids[0]
    return out


def record_verdicts(engine: Engine, run: Run, items: list[VerdictInput]) -> int:
    """Validate every verdict, then record them all in one transaction; returns how many."""
    if not items:
        return 0
    labels = allowed_labels(engine, run)
    for item in items:
        if item.label not in labels:
            raise ReviewError(
                f"{item.label!r} is not a label of run {run.name}'s model; "
                f"use one of {', '.join(labels)}"
            )
        if not item.reviewer.strip():
            raise ReviewError("a verdict needs a reviewer's name (--by NAME)")
    ids = _resolve(engine, run, [x.ref for x in items])
    in_force = policy_in_force(engine, run)
    wanted = sorted(set(ids.values()))
    policy = in_force.policy if in_force else None
    with engine.connect() as conn:
        said = {
            int(r.image_id): r
            for r in conn.execute(image_calls(engine, run.id, policy, image_ids=wanted))
        }
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for item in items:
        model = said.get(ids[item.ref])
        rows.append(
            {
                "run_id": run.id,
                "image_id": ids[item.ref],
                "label": item.label,
                "reviewer": item.reviewer.strip(),
                "note": item.note or None,
                "created_at": now,
                "model_label": model.label if model is not None else None,
                "model_confidence": model.confidence if model is not None else None,
                "model_call": model.model_call if model is not None else None,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(Verdict), rows)
    return len(rows)


def read_verdict_csv(path: Path, *, reviewer: str) -> tuple[list[VerdictInput], int]:
    """Verdicts from a CSV (`path` or `sha256`, `verdict` or else `label`, optional
    `reviewer`, `note`), such as a filled-in `review --csv` worklist (whose `label` column is
    the model's, so `verdict` wins); rows with an empty verdict are skipped."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = set(reader.fieldnames or [])
            key = "sha256" if "sha256" in cols else "path" if "path" in cols else None
            label_col = "verdict" if "verdict" in cols else "label" if "label" in cols else None
            if key is None or label_col is None:
                raise ReviewError(
                    f"{path} needs a path or sha256 column and a label (or verdict) column"
                )
            items: list[VerdictInput] = []
            skipped = 0
            for row in reader:
                label = (row.get(label_col) or "").strip()
                if not label:
                    skipped += 1
                    continue
                who = (row.get("reviewer") or row.get("by") or "").strip() or reviewer
                items.append(VerdictInput(row[key] or "", label, who, row.get("note") or None))
    except OSError as exc:
        raise ReviewError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReviewError(f"{path} is not a UTF-8 CSV file: {exc}") from exc
    return items, skipped
