"""Case-level screening on simulated cases built from the shared test split. Run:
    .venv/bin/python -m bench.cases [--seed S] [--cases N] [--repeats R] [--policy FILE] [--json]

Every test image is classified once by the reference `.eim` through the SDK's
`ImageImpulseRunner`, exactly as a worker does (decode to BGR, the worker's features, one
model session). Then N cases (default 60) of 5 to 30 images are drawn: each case's class is
picked at random in proportion to the class counts, and its images are sampled without
replacement from that class (two cases may share an image). Image calls come from
`ScreeningPolicy.call`, case calls from `readout.cases.CaseRow.call` (positive at ≥ K positive
images; review if any image is positive, in review or failed; else negative).

Reported at the policy given by `--policy FILE`, else the one the model reports in its hello
thresholds, else `FALLBACK_POLICY`: case sensitivity for ALL (ALL cases not called negative),
case specificity (Benign cases called negative), the shares of cases and of their images sent
to review, and per image over the whole split: ALL sensitivity, Benign specificity and the
share sent to review. The case figures are repeated for seeds S .. S+R-1 (mean, min, max).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allscreen.defaults import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_IMAGE_PIXELS
from allscreen.errors import AllscreenError, ImageRejected, ModelError
from allscreen.policy import (
    CALL_NEGATIVE,
    CALL_POSITIVE,
    CALL_REVIEW,
    ScreeningPolicy,
    load_policy_file,
    policy_from_thresholds,
)
from bench.common import DATA, machine, model_session
from model.evaluate import load_split
from readout.binomial import proportion_interval
from readout.cases import CaseRow
from worker.decode import decode_bgr
from worker.session import ModelInfo

DEFAULT_CASES = 60  #: simulated cases per seed, as issue 14 asks
CASE_SIZES = (5, 30)  #: fewest and most images in a case (uniform, inclusive)
DEFAULT_REPEATS = 5  #: seeds the case figures are repeated over
BENIGN = "Benign"  #: the split's one class that is not ALL (ground truth, not a model label)
#: A policy for a model that reports none: negative only when P(Benign) ≥ 0.9 (issue 14).
FALLBACK_POLICY = ScreeningPolicy(negative_labels=(BENIGN,), min_negative_score=0.9)


@dataclass(frozen=True, slots=True)
class Scored:
    """One test image: its ground truth and the model's scores (None if it failed)."""

    path: Path
    truth: str
    scores: dict[str, float] | None


@dataclass(frozen=True, slots=True)
class Share:
    """`hits` of `n`, with its exact 95 % interval."""

    hits: int
    n: int

    @property
    def rate(self) -> float | None:
        """hits / n, or None for an empty count."""
        return self.hits / self.n if self.n else None

    def to_json(self) -> dict[str, Any]:
        """hits, n, rate and the 95 % interval (rate and interval null for an empty count)."""
        ci = list(proportion_interval(self.hits, self.n)) if self.n else None
        return {"hits": self.hits, "n": self.n, "rate": self.rate, "ci95": ci}

    def text(self) -> str:
        """`48/50  96.0%  (95 % CI 86.3%-99.5%)`."""
        if not self.n:
            return "-"
        lo, hi = proportion_interval(self.hits, self.n)
        return f"{self.hits}/{self.n}  {self.hits / self.n:6.1%}  (95 % CI {lo:.1%}-{hi:.1%})"


def classify_split(rows: list[tuple[Path, str]]) -> tuple[list[Scored], ModelInfo]:
    """Classify every image once, as a worker does; a rejected or failed image has no scores."""
    session = model_session()
    out: list[Scored] = []
    try:
        info = session.info
        for path, truth in rows:
            try:
                bgr = decode_bgr(
                    path.read_bytes(),
                    max_bytes=DEFAULT_MAX_IMAGE_BYTES,
                    max_pixels=DEFAULT_MAX_IMAGE_PIXELS,
                )
                scores: dict[str, float] | None = session.classify(session.features_bgr(bgr)).scores
            except (ImageRejected, ModelError) as exc:
                print(f"{path.name}: failed: {exc}", file=sys.stderr)
                scores = None
            out.append(Scored(path, truth, scores))
    finally:
        session.close()
    return out, info


def negative_score(policy: ScreeningPolicy, scores: dict[str, float]) -> float:
    """The summed score of the policy's negative labels (as `readout.calls` sums them)."""
    return sum(scores.get(x, 0.0) for x in policy.negative_labels)


def image_call(policy: ScreeningPolicy, scores: dict[str, float] | None) -> str | None:
    """The image's call under `policy` (None for an image that failed)."""
    if scores is None:
        return None
    label = max(scores, key=lambda k: scores[k])  # the worker's top label, ties included
    return policy.call(negative_score(policy, scores), label, scores[label])


def case_row(index: int, members: list[Scored], policy: ScreeningPolicy) -> CaseRow:
    """A simulated case as `readout.cases` counts one (nothing pending, nothing reviewed)."""
    calls = [image_call(policy, m.scores) for m in members]
    positive_scores = [
        1.0 - negative_score(policy, m.scores) for m in members if m.scores is not None
    ]
    n_pos, n_rev = calls.count(CALL_POSITIVE), calls.count(CALL_REVIEW)
    return CaseRow(
        case_id=index,
        name=f"case-{index:03d}",
        patient=None,
        images=len(members),
        positive=n_pos,
        review=n_rev,
        negative=calls.count(CALL_NEGATIVE),
        failed=calls.count(None),
        pending=0,
        flagged=n_pos + n_rev,
        flagged_reviewed=0,
        max_positive_score=max(positive_scores, default=None),
        min_positive_images=policy.min_positive_images,
    )


def simulate(
    scored: list[Scored], policy: ScreeningPolicy, *, cases: int, seed: int
) -> dict[str, Share]:
    """Case figures for one seed: sensitivity, specificity, review shares."""
    rng = random.Random(seed)
    by_class: dict[str, list[Scored]] = {}
    for s in scored:
        by_class.setdefault(s.truth, []).append(s)
    classes = sorted(by_class)
    weights = [len(by_class[c]) for c in classes]
    truths: list[str] = []
    rows: list[CaseRow] = []
    for i in range(cases):
        truth = rng.choices(classes, weights=weights)[0]
        size = min(rng.randint(*CASE_SIZES), len(by_class[truth]))
        truths.append(truth)
        rows.append(case_row(i, rng.sample(by_class[truth], size), policy))
    ill = [r for r, t in zip(rows, truths, strict=True) if t != BENIGN]
    well = [r for r, t in zip(rows, truths, strict=True) if t == BENIGN]
    return {
        "case_sensitivity": Share(sum(r.call != CALL_NEGATIVE for r in ill), len(ill)),
        "case_specificity": Share(sum(r.call == CALL_NEGATIVE for r in well), len(well)),
        "cases_to_review": Share(sum(r.call == CALL_REVIEW for r in rows), len(rows)),
        "case_images_to_review": Share(sum(r.review for r in rows), sum(r.images for r in rows)),
    }


def split_figures(scored: list[Scored], policy: ScreeningPolicy) -> dict[str, Share]:
    """Per-image figures over the whole split, each image counted once."""
    calls = [(s.truth, image_call(policy, s.scores)) for s in scored]
    ill = [c for t, c in calls if t != BENIGN]
    well = [c for t, c in calls if t == BENIGN]
    return {
        "image_all_sensitivity": Share(sum(c != CALL_NEGATIVE for c in ill), len(ill)),
        "image_benign_specificity": Share(well.count(CALL_NEGATIVE), len(well)),
        "images_to_review": Share(sum(c == CALL_REVIEW for _, c in calls), len(calls)),
        "images_failed": Share(sum(c is None for _, c in calls), len(calls)),
    }


def choose_policy(path: Path | None, info: ModelInfo) -> tuple[ScreeningPolicy, str]:
    """The policy to report at, and where it came from."""
    if path is not None:
        policy, source = load_policy_file(path), f"file {path}"
    else:
        reported = policy_from_thresholds(json.loads(info.thresholds))
        policy, source = (
            (reported, "the model's hello thresholds")
            if reported is not None
            else (FALLBACK_POLICY, "the benchmark's fallback (the model reports none)")
        )
    policy.check_labels(info.labels)
    return policy, source


def summary(per_seed: list[dict[str, Share]]) -> dict[str, dict[str, float]]:
    """Mean, min and max of each case figure's rate over the seeds (empty counts left out)."""
    out: dict[str, dict[str, float]] = {}
    for key in per_seed[0]:
        rates = [r for r in (s[key].rate for s in per_seed) if r is not None]
        if rates:
            out[key] = {"mean": statistics.fmean(rates), "min": min(rates), "max": max(rates)}
    return out


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything one invocation measured, printable as a table or as JSON."""

    model: str
    policy: ScreeningPolicy
    source: str
    classes: dict[str, int]  #: test images per class
    cases: int
    split: dict[str, Share]
    seeds: list[int]
    per_seed: list[dict[str, Share]]

    def lines(self) -> list[str]:
        """The human-readable table."""
        out = [
            f"policy: {self.policy.describe()}  [{self.source}]",
            f"test split: {sum(self.classes.values())} images ("
            + ", ".join(f"{k} {v}" for k, v in self.classes.items())
            + "), each classified once",
            *(f"  {key:<26}{share.text()}" for key, share in self.split.items()),
        ]
        for seed, figures in zip(self.seeds, self.per_seed, strict=True):
            out.append(f"seed {seed}: {self.cases} cases of {CASE_SIZES[0]}-{CASE_SIZES[1]} images")
            out.extend(f"  {key:<26}{share.text()}" for key, share in figures.items())
        out.append(f"over seeds {self.seeds[0]}-{self.seeds[-1]}: {'mean':>8}{'min':>8}{'max':>8}")
        for key, agg in summary(self.per_seed).items():
            out.append(f"  {key:<26}{agg['mean']:8.1%}{agg['min']:8.1%}{agg['max']:8.1%}")
        return out

    def to_json(self) -> dict[str, Any]:
        """The same figures as plain JSON."""
        return {
            "model": self.model,
            "policy": json.loads(self.policy.to_json()),
            "policy_source": self.source,
            "classes": self.classes,
            "cases_per_seed": self.cases,
            "case_sizes": list(CASE_SIZES),
            "split": {k: v.to_json() for k, v in self.split.items()},
            "seeds": self.seeds,
            "per_seed": [{k: v.to_json() for k, v in f.items()} for f in self.per_seed],
            "summary": summary(self.per_seed),
        }


def main() -> None:
    """Classify the test split once, simulate cases for each seed, print a table or JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--cases", type=int, default=DEFAULT_CASES, help="cases per seed")
    ap.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="seeds to repeat over")
    ap.add_argument("--policy", type=Path, default=None, help="policy JSON (allscreen.policy)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = ap.parse_args()
    if args.cases < 1 or args.repeats < 1:
        sys.exit("--cases and --repeats must be at least 1")
    if not (DATA / "split.csv").is_file():
        sys.exit(f"skipped: bench.cases needs the shared test split at {DATA / 'split.csv'}")
    where = machine()
    try:
        scored, info = classify_split(load_split(DATA, "test"))
        policy, source = choose_policy(args.policy, info)
    except AllscreenError as exc:  # the model did not start, or the policy does not fit it
        sys.exit(f"bench.cases: {exc}")
    seeds = list(range(args.seed, args.seed + args.repeats))
    evaluation = Evaluation(
        model=f"{info.name} v{info.version} ({info.sha256[:12]})",
        policy=policy,
        source=source,
        classes={c: sum(s.truth == c for s in scored) for c in sorted({s.truth for s in scored})},
        cases=args.cases,
        split=split_figures(scored, policy),
        seeds=seeds,
        per_seed=[simulate(scored, policy, cases=args.cases, seed=s) for s in seeds],
    )
    if args.json:
        print(json.dumps({**evaluation.to_json(), "machine": where}, indent=2))
        return
    print(f"# case-level screening: {evaluation.model}; {where}")
    print("\n".join(evaluation.lines()))


if __name__ == "__main__":
    main()
