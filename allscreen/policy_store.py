"""Which screening policy is in force for a run: the newest one set on it, else its model's.

Policies set on a run are kept, newest last (`policies` is append-only), so every report can
say which policy it used and a run's earlier policies stay on record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from allscreen.models_seen import SeenModel, model_of_run
from allscreen.policy import ScreeningPolicy, policy_from_mapping, policy_from_thresholds
from allscreen.schema import PolicyRecord, Run


@dataclass(frozen=True, slots=True)
class InForce:
    """A policy and where it came from (`set with --policy FILE`, `the model's hello`...)."""

    policy: ScreeningPolicy
    source: str
    policy_id: int | None  #: the `policies` row, or None for the model's own default


def policy_history(engine: Engine, run_id: int) -> list[tuple[int, datetime, str, str]]:
    """Every policy set on the run, oldest first: (id, when, source, JSON)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(PolicyRecord.id, PolicyRecord.created_at, PolicyRecord.source, PolicyRecord.body)
            .where(PolicyRecord.run_id == run_id)
            .order_by(PolicyRecord.id)
        ).all()
    return [(int(i), when, source, body) for i, when, source, body in rows]


def policy_in_force(engine: Engine, run: Run, *, model: SeenModel | None = None) -> InForce | None:
    """The run's newest policy, else the operating point its model reports, else None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(PolicyRecord.id, PolicyRecord.source, PolicyRecord.body)
            .where(PolicyRecord.run_id == run.id)
            .order_by(PolicyRecord.id.desc())
            .limit(1)
        ).first()
    if row is not None:
        policy = policy_from_mapping(json.loads(row.body), where=f"policy {row.id}")
        return InForce(policy, row.source, int(row.id))
    model = model or model_of_run(engine, run.id, run.model_sha256)
    if model is None:
        return None
    default = policy_from_thresholds(model.thresholds)
    if default is None:
        return None
    who = f"{model.name or 'model'} v{model.version or '?'}"
    return InForce(default, f"the operating point {who} reports in its hello", None)


def set_policy(
    engine: Engine, run_id: int, policy: ScreeningPolicy, *, source: str, labels: list[str]
) -> int:
    """Record `policy` as the run's policy from now on; earlier ones stay on record."""
    policy.check_labels(labels)
    with engine.begin() as conn:
        new_id = conn.scalar(
            insert(PolicyRecord)
            .values(
                run_id=run_id, created_at=datetime.now(UTC), source=source, body=policy.to_json()
            )
            .returning(PolicyRecord.id)
        )
    assert new_id is not None
    return int(new_id)
