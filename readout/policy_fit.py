"""Fitting a screening policy on a lab's own images: the loosest one that keeps a sensitivity.

The truth of an image is its newest reviewer verdict (other than `unsure`), else its ground
truth. The negative-score threshold is the smallest that leaves at most ⌊(1 - target)·P⌋ of
the P positive images called negative (never below 0.5: a negative call needs the negative
labels to hold most of the score). The review band and K are given, not fitted. The fit says
how sure the sample lets one be: an exact 95 % interval for the sensitivity, and whether the
sample holds enough positives to support the target at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import Engine, and_, select

from allscreen.errors import PolicyError
from allscreen.policy import CALL_NEGATIVE, CALL_REVIEW, UNSURE, ScreeningPolicy
from allscreen.schema import STATUS_DONE, Image, Result, Run
from readout.binomial import positives_needed, proportion_interval
from readout.calls import latest_verdicts, negative_score

MIN_THRESHOLD = 0.5  #: a negative call needs the negative labels to hold most of the score
_STEP = 1e-4  #: thresholds are rounded up to this, so the policy reads cleanly


@dataclass(frozen=True, slots=True)
class Fit:
    """A fitted policy and what it does on the sample it was fitted on."""

    policy: ScreeningPolicy
    target: float
    images: int
    positives: int
    missed: int  #: positive images the policy calls negative
    negatives: int
    negatives_flagged: int  #: negative images the policy calls positive or review
    reviewed: int  #: images the policy sends to review
    interval: tuple[float, float]  #: exact 95 % interval of the sensitivity

    @property
    def sensitivity(self) -> float:
        """Share of positive images not called negative, on the sample."""
        return 1.0 - self.missed / self.positives

    @property
    def supported(self) -> bool:
        """Whether the sample shows the target at 95 % (the interval's lower bound reaches it)."""
        return self.interval[0] >= self.target

    def lines(self) -> list[str]:
        """The fit for people, with a plain word where the sample is too small."""
        out = [
            f"fitted on {self.images} images with known truth: {self.positives} positive, "
            f"{self.negatives} negative",
            f"policy: {self.policy.describe()}",
            f"sensitivity on this sample {self.sensitivity:.2%} ({self.missed} of "
            f"{self.positives} positive images called negative); exact 95% interval "
            f"{self.interval[0]:.2%} to {self.interval[1]:.2%}",
            f"negative images flagged: {self.negatives_flagged} of {self.negatives} "
            f"({_share(self.negatives_flagged, self.negatives)}); sent to review: "
            f"{self.reviewed} of {self.images} images ({_share(self.reviewed, self.images)})",
        ]
        if not self.supported:
            out.append(
                f"WARNING: this sample is too small to support sensitivity ≥ {self.target:.2%}: "
                f"its {self.positives} positive images leave the 95% lower bound at "
                f"{self.interval[0]:.2%}. About {positives_needed(self.target)} positive images "
                "with none missed would be needed; treat this policy as provisional"
            )
        return out


def _share(k: int, n: int) -> str:
    return f"{k / n:.1%}" if n else "-"


def fit_policy(
    engine: Engine,
    run: Run,
    *,
    target: float,
    negative_labels: tuple[str, ...],
    min_confidence: float,
    min_positive_images: int,
) -> Fit:
    """The loosest policy keeping `target` sensitivity on the run's images with known truth."""
    if not 0.5 <= target < 1.0:
        raise PolicyError(f"--sensitivity must be at least 0.5 and below 1, got {target}")
    probe = ScreeningPolicy(negative_labels, 1.0, min_confidence, min_positive_images)
    v = latest_verdicts(run.id)
    stmt = (
        select(
            Image.ground_truth,
            v.c.label,
            Result.label,
            Result.confidence,
            negative_score(engine, probe),
        )
        .select_from(Image)
        .join(Result, and_(Result.run_id == Image.run_id, Result.image_id == Image.id))
        .outerjoin(v, v.c.image_id == Image.id)
        .where(Image.run_id == run.id, Result.status == STATUS_DONE)
    )
    sample: list[tuple[bool, str, float, float]] = []
    with engine.connect() as conn:
        for truth, verdict, label, conf, neg in conn.execute(stmt):
            known = verdict if verdict is not None and verdict != UNSURE else truth
            if known is not None:
                sample.append((known not in negative_labels, label, float(conf), float(neg)))
    positives = [s for s in sample if s[0]]
    if not positives:
        raise PolicyError(
            f"run {run.name} has no classified positive image with known truth (ground truth "
            "or a reviewer's verdict), so no sensitivity can be fitted"
        )
    allowed = math.floor((1.0 - target) * len(positives) + 1e-9)
    missable = sorted(
        (neg for _, _, conf, neg in positives if conf >= min_confidence), reverse=True
    )
    threshold = MIN_THRESHOLD
    if len(missable) > allowed:
        above = missable[allowed]
        threshold = max(MIN_THRESHOLD, min(1.0, math.ceil((above + 1e-12) / _STEP) * _STEP))
    policy = ScreeningPolicy(negative_labels, threshold, min_confidence, min_positive_images)
    calls = [(pos, policy.call(neg, label, conf)) for pos, label, conf, neg in sample]
    missed = sum(pos and c == CALL_NEGATIVE for pos, c in calls)
    negatives = len(sample) - len(positives)
    return Fit(
        policy=policy,
        target=target,
        images=len(sample),
        positives=len(positives),
        missed=missed,
        negatives=negatives,
        negatives_flagged=sum(not pos and c != CALL_NEGATIVE for pos, c in calls),
        reviewed=sum(c == CALL_REVIEW for _, c in calls),
        interval=proportion_interval(len(positives) - missed, len(positives)),
    )
