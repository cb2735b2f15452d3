"""`export`: one CSV row per image, with a score column per model label and its calls."""

from __future__ import annotations

import csv
import json
from typing import TextIO

from sqlalchemy import Engine, and_, select
from sqlalchemy.orm import Session

from allscreen.policy_store import policy_in_force
from allscreen.schema import Case, Image, Result, Run
from readout.calls import image_calls

BASE_COLUMNS = ["path", "sha256", "case", "status", "label", "confidence"]
TAIL_COLUMNS = ["ground_truth", "device", "model", "latency_ms", "error"]
CALL_COLUMNS = ["call", "verdict", "reviewer", "final_call", "policy"]


def _labels(engine: Engine, run_id: int) -> list[str]:
    # Labels come from the model's replies, so a run of a 2-class model gets 2 score columns.
    seen: dict[str, None] = {}
    with engine.connect() as conn:
        for (scores,) in conn.execute(
            select(Result.scores).where(Result.run_id == run_id, Result.scores.is_not(None))
        ):
            for key in json.loads(scores or "{}"):
                seen.setdefault(key, None)
    return list(seen)


def export_csv(engine: Engine, run: Run, out: TextIO) -> int:
    """Write the run's rows to `out`; images without a result yet say `pending`.

    `call` is the model's call under the policy in force (named in `policy`), `final_call`
    the reviewer's where there is a verdict; all three are empty for a run with no policy.
    """
    run_id = run.id
    labels = _labels(engine, run_id)
    in_force = policy_in_force(engine, run)
    policy_text = in_force.policy.describe() if in_force else ""
    calls = image_calls(engine, run_id, in_force.policy if in_force else None).subquery()
    writer = csv.writer(out)
    writer.writerow(BASE_COLUMNS + [f"score_{x}" for x in labels] + TAIL_COLUMNS + CALL_COLUMNS)
    stmt = (
        select(
            Image,
            Result,
            Case.name,
            calls.c.model_call,
            calls.c.verdict,
            calls.c.reviewer,
            calls.c.final_call,
        )
        .outerjoin(Result, and_(Result.run_id == Image.run_id, Result.image_id == Image.id))
        .outerjoin(Case, Case.id == Image.case_id)
        .join(calls, calls.c.image_id == Image.id)
        .where(Image.run_id == run_id)
        .order_by(Image.id)
        .execution_options(yield_per=1000)
    )
    n = 0
    with Session(engine) as session:
        for img, res, case_name, call, verdict, reviewer, final in session.execute(stmt):
            scores = json.loads(res.scores) if res is not None and res.scores else {}
            model = ""
            if res is not None and res.model_sha256:
                model = f"{res.model_name} v{res.model_version} ({res.model_sha256[:12]})"
            writer.writerow(
                [
                    img.path,
                    img.sha256,
                    case_name or "",
                    res.status if res else "pending",
                    res.label if res else "",
                    _num(res.confidence if res else None),
                ]
                + [_num(scores.get(x)) for x in labels]
                + [
                    img.ground_truth or "",
                    res.device if res else "",
                    model,
                    _num(res.inference_ms if res else None),
                    (res.error or "") if res else "",
                    call or "",
                    verdict or "",
                    reviewer or "",
                    final or "",
                    policy_text if call else "",
                ]
            )
            n += 1
    return n


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"
