"""The screening part of `status`: the policy in force, calls per image and case, reviews."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from allscreen.policy_store import policy_in_force
from allscreen.schema import Run
from readout.calls import call_counts
from readout.cases import case_call_counts, case_rows, has_cases


def screening_status(engine: Engine, run: Run) -> dict[str, Any]:
    """`status --json`'s `screening` object (`policy` is null for a run with labels only)."""
    in_force = policy_in_force(engine, run)
    cases = has_cases(engine, run.id)
    if in_force is None:
        return {"policy": None, "cases": None}
    c = call_counts(engine, run.id, in_force.policy)
    data: dict[str, Any] = {
        "policy": {
            **{
                "negative_labels": list(in_force.policy.negative_labels),
                "min_negative_score": in_force.policy.min_negative_score,
                "min_confidence": in_force.policy.min_confidence,
                "min_positive_images": in_force.policy.min_positive_images,
            },
            "source": in_force.source,
            "policy_id": in_force.policy_id,
        },
        "images": {"positive": c.positive, "review": c.review, "negative": c.negative},
        "reviewed": c.reviewed,
        "reviewer_agreed_with_label": c.agreed_label,
        "reviewer_decided": c.decided,
        "reviewer_changed_call": c.changed_call,
        "cases": case_call_counts(case_rows(engine, run.id, in_force.policy)) if cases else None,
    }
    return data


def screening_lines(data: dict[str, Any]) -> list[str]:
    """Lines for `status`."""
    policy = data.get("policy")
    if policy is None:
        return ["  screening: no policy (per-image labels only; see `allscreen policy set`)"]
    neg = " + ".join(policy["negative_labels"])
    lines = [
        f"  screening policy: negative = P({neg}) ≥ {policy['min_negative_score']:.3f}, "
        f"review below confidence {policy['min_confidence']:.3f}, case positive at "
        f"≥ {policy['min_positive_images']} image(s)  [{policy['source']}]",
        "  images: "
        + "   ".join(f"{k} {v}" for k, v in data["images"].items())
        + "   (final calls: a reviewer's verdict replaces the model's)",
    ]
    if data["cases"] is not None:
        lines.append("  cases:  " + "   ".join(f"{k} {v}" for k, v in data["cases"].items()))
    if data["reviewed"]:
        agreed = data["reviewer_agreed_with_label"]
        decided = data["reviewer_decided"]
        share = f"{agreed / decided:.1%}" if decided else "-"
        lines.append(
            f"  reviewed {data['reviewed']} images: reviewers agreed with the model's label on "
            f"{agreed} of {decided} ({share}); the call changed on {data['reviewer_changed_call']}"
        )
    return lines
