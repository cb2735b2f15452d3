"""Which models a run's results came from, and the warnings `status` (and reports) show.

A run should be classified by one model. With a pin (`submit --model-sha256`) workers holding
another model refuse its batches, and those refusals are listed. Without a pin, a run whose
results come from several models gets a warning: its figures mix models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from allscreen.refusals import refusals_of_run
from allscreen.schema import LabelTally, Run

_SHORT = 12  #: hex digits of a sha256 shown to people


@dataclass(frozen=True, slots=True)
class ModelShare:
    """How many of a run's images one model classified."""

    sha256: str | None
    name: str | None
    version: str | None
    done: int


def models_of_run(engine: Engine, run_id: int) -> list[ModelShare]:
    """The models behind a run's done results, most images first (from the write-time
    tallies, allscreen/tallies.py: a group over `results` took 0.9 s at a million images)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                LabelTally.model_sha256,
                func.max(LabelTally.model_name),
                func.max(LabelTally.model_version),
                func.sum(LabelTally.n),
            )
            .where(LabelTally.run_id == run_id)
            .group_by(LabelTally.model_sha256)
            .having(func.sum(LabelTally.n) > 0)
        ).all()
    shares = [ModelShare(sha or None, name, version, int(n)) for sha, name, version, n in rows]
    return sorted(shares, key=lambda m: (-m.done, m.sha256 or ""))


def model_status(engine: Engine, run: Run) -> dict[str, Any]:
    """The model part of `status --json`: the pin, the models seen, and the refusals."""
    shares = models_of_run(engine, run.id)
    refusals = refusals_of_run(engine, run.id)
    return {
        "model_sha256": run.model_sha256,
        "models": [
            {"sha256": m.sha256, "name": m.name, "version": m.version, "done": m.done}
            for m in shares
        ],
        "mixed_models": len(shares) > 1,
        "refused_batches": sum(r.batches for r in refusals),
        "refusals": [
            {
                "device": r.device,
                "model_sha256": r.model_sha256,
                "model_file": r.model_file,
                "batches": r.batches,
                "last_at": r.last_at.isoformat(),
            }
            for r in refusals
        ],
    }


def _short(sha: str | None) -> str:
    return "?" if sha is None else sha[:_SHORT]


def _model(m: dict[str, Any]) -> str:
    return f"{_short(m['sha256'])} ({m['name']} v{m['version']}, {m['done']} images)"


def model_lines(data: dict[str, Any]) -> list[str]:
    """Lines for `status`: the pin, and warnings for mixed models and refusals."""
    lines: list[str] = []
    pin = data.get("model_sha256")
    models = data.get("models") or []
    if pin:
        lines.append(f"  pinned to model {_short(pin)}")
    elif len(models) == 1:
        lines.append(f"  model {_model(models[0])}")
    if data.get("mixed_models"):
        lines.append(
            f"  WARNING: results come from {len(models)} different models: "
            + "; ".join(_model(m) for m in models)
            + (
                ". Pin one with `submit --model-sha256 SHA`"
                if not pin
                else ". Results written before the pin was set remain"
            )
        )
    for r in data.get("refusals") or []:
        lines.append(
            f"  WARNING: device {r['device']} holds model {_short(r['model_sha256'])} "
            f"({r['model_file']}) and refused {r['batches']} batches of this pinned run; "
            "they wait for a device with the pinned model"
        )
    return lines
