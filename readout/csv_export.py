"""`export`: one CSV row per image, with a score column per model label."""

from __future__ import annotations

import csv
import json
from typing import TextIO

from sqlalchemy import Engine, and_, select
from sqlalchemy.orm import Session

from allscreen.schema import Image, Result

BASE_COLUMNS = ["path", "sha256", "status", "label", "confidence"]
TAIL_COLUMNS = ["ground_truth", "device", "model", "latency_ms", "error"]


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


def export_csv(engine: Engine, run_id: int, out: TextIO) -> int:
    """Write the run's rows to `out`; images without a result yet say `pending`."""
    labels = _labels(engine, run_id)
    writer = csv.writer(out)
    writer.writerow(BASE_COLUMNS + [f"score_{x}" for x in labels] + TAIL_COLUMNS)
    stmt = (
        select(Image, Result)
        .outerjoin(Result, and_(Result.run_id == Image.run_id, Result.image_id == Image.id))
        .where(Image.run_id == run_id)
        .order_by(Image.id)
        .execution_options(yield_per=1000)
    )
    n = 0
    with Session(engine) as session:
        for img, res in session.execute(stmt):
            scores = json.loads(res.scores) if res is not None and res.scores else {}
            model = ""
            if res is not None and res.model_sha256:
                model = f"{res.model_name} v{res.model_version} ({res.model_sha256[:12]})"
            writer.writerow(
                [
                    img.path,
                    img.sha256,
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
                ]
            )
            n += 1
    return n


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"
