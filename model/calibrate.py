"""Fit the temperature and choose the screening operating point on out-of-fold predictions.

Reads a finished :mod:`model.cv` run (``model/.train-cache/cv-<run>.npz``: out-of-fold
softmax over ``train`` + ``val``; ``test`` is never involved), then

1. fits one temperature ``T`` (:func:`model.calibration.fit_temperature`) and reports the
   NLL and the expected calibration error (15 bins, top label) before and after, with a
   reliability diagram;
2. on the calibrated probabilities, chooses ``t`` on ``P(Benign)`` for ALL sensitivity
   >= 99.75% and the review band ``r`` from its cost (:mod:`model.screening`).

Writes ``model/calibration.json`` (read by ``model.train`` to build ``T`` and the operating
point into the exported model) and ``model/calibration.svg``. Usage::

    .venv/bin/python -m model.calibrate --run v2-H
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.calibration import (
    ECE_BINS,
    apply_temperature,
    cross_fitted,
    fit_temperature,
    plot_reliability,
    reliability,
)
from model.data import CACHE_DIR
from model.evaluate import REPO_ROOT
from model.metrics import nll
from model.oof import OutOfFold
from model.screening import (
    MAX_MISSED_SHARE,
    MAX_REVIEW_SHARE,
    NEGATIVE_LABELS,
    choose_min_confidence,
    choose_min_negative_score,
    outcome,
    review_table,
)

DEFAULT_OUT = REPO_ROOT / "model" / "calibration.json"
DEFAULT_FIGURE = REPO_ROOT / "model" / "calibration.svg"


def calibrate(run: OutOfFold, name: str) -> dict[str, Any]:
    """Temperature, calibration figures and operating point of one CV run."""
    before = reliability(run.probs, run.labels)
    temperature = fit_temperature(run.probs, run.labels)
    calibrated = apply_temperature(run.probs, temperature)
    after = reliability(calibrated, run.labels)
    crossed = cross_fitted(run.probs, run.labels, run.folds)
    t = choose_min_negative_score(calibrated, run.labels)
    table = review_table(calibrated, run.labels, t)
    r = choose_min_confidence(table)
    return {
        "run": name,
        "n": len(run.labels),
        "temperature": temperature,
        "ece_bins": ECE_BINS,
        "nll_before": nll(run.probs, run.labels),
        "nll_after": nll(calibrated, run.labels),
        "ece_before": before.ece,
        "ece_after": after.ece,
        "nll_cross_fitted": nll(crossed, run.labels),
        "ece_cross_fitted": reliability(crossed, run.labels).ece,
        "screening": {
            "negative_labels": list(NEGATIVE_LABELS),
            "min_negative_score": t,
            "min_confidence": r,
            "max_missed_share": MAX_MISSED_SHARE,
            "max_review_share": MAX_REVIEW_SHARE,
        },
        "at_t_without_review": outcome(calibrated, run.labels, t, 0.0),
        "at_operating_point": outcome(calibrated, run.labels, t, r),
        "review_table": table,
    }


def format_result(result: dict[str, Any]) -> str:
    """The figures of :func:`calibrate` as text, with the review table."""
    point, op = result["screening"], result["at_operating_point"]
    at_t = result["at_t_without_review"]
    lines = [
        f"run {result['run']}: {result['n']} out-of-fold images, T = {result['temperature']}",
        f"NLL {result['nll_before']:.4f} -> {result['nll_after']:.4f}; "
        f"ECE ({result['ece_bins']} bins) {result['ece_before'] * 100:.2f}% -> "
        f"{result['ece_after'] * 100:.2f}% (T fit on the other folds: NLL "
        f"{result['nll_cross_fitted']:.4f}, ECE {result['ece_cross_fitted'] * 100:.2f}%)",
        f"t = {point['min_negative_score']}: {at_t['all_negative']} of {at_t['n_all']} ALL images "
        f"at P(Benign) >= t; {at_t['benign_flagged']} of {at_t['n_benign']} Benign flagged "
        "(P(Benign) < t)",
        f"r = {point['min_confidence']}: review {op['reviewed']} ({op['review_share'] * 100:.2f}%)"
        f"; ALL negative {op['all_negative']}, Benign positive {op['benign_positive']}, "
        f"Benign review {op['benign_review']}, ALL review {op['all_review']}",
        "r     reviewed  share   ALL neg  Benign pos  screening err  top-label err reviewed",
    ]
    for row in result["review_table"]:
        lines.append(
            f"{row['r']:.2f}  {row['reviewed']:>8}  {row['review_share'] * 100:5.2f}%  "
            f"{row['all_negative']:>7}  {row['benign_positive']:>10}  "
            f"{row['screening_errors']:>13}  {row['top_label_errors_reviewed']:>3} of "
            f"{row['top_label_errors']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--run", required=True, help="name of a finished model.cv run")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON")
    p.add_argument("--figure", type=Path, default=DEFAULT_FIGURE, help="reliability SVG")
    args = p.parse_args(argv)
    run = OutOfFold.load(args.run)
    result = calibrate(run, args.run)
    cv_json = CACHE_DIR / f"cv-{args.run}.json"
    if cv_json.is_file():
        result["recipe"] = json.loads(cv_json.read_text(encoding="utf-8")).get("config", {})
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    title = (
        f"out-of-fold predictions of CV run {args.run} ({result['n']} images, train + val), "
        f"temperature T = {result['temperature']}"
    )
    calibrated = apply_temperature(run.probs, result["temperature"])
    plot_reliability(
        reliability(run.probs, run.labels), reliability(calibrated, run.labels), title, args.figure
    )
    print(format_result(result))
    print(f"wrote {args.out} and {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
