"""The report's screening parts: the policy in force, the Cases section and the Review section.

Calls, case rows and the review queue come from `readout.calls`, `readout.cases` and
`readout.review`, the same reads `status` and `review` use, so the page and the command line
always agree. Flagged images are shown as small embedded thumbnails (`readout.thumbnails`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from allscreen.policy import CALL_POSITIVE, CALL_REVIEW
from allscreen.policy_store import InForce, policy_in_force
from allscreen.schema import Image, Run
from readout.calls import CallCounts, call_counts
from readout.cases import CaseRow, case_call_counts, case_rows, has_cases
from readout.html_parts import call_cell, card, esc, more_note, num, pct
from readout.review import FlaggedImage, flagged_images
from readout.thumbnails import thumbnail_uri

MAX_CASES_LISTED = 500  #: case rows in the Cases table; the rest are counted
MAX_THUMBNAILS = 200  #: flagged images shown as thumbnails (~4 kB each); the rest are counted


@dataclass(slots=True)
class ScreeningData:
    """What the screening parts of the report show about a run that has a policy in force."""

    run_name: str
    in_force: InForce
    counts: CallCounts
    cases: list[CaseRow] | None  #: every case in review-queue order; None for a run without
    flagged: list[FlaggedImage]  #: images the model flagged, in queue order
    thumbnails: dict[int, str | None] = field(default_factory=dict)  #: image id → data URI


def _counts_of(status: dict[str, Any] | None) -> CallCounts | None:
    """The call counts `status` already aggregated (its `screening` object), if it has them."""
    if not status or status.get("policy") is None:
        return None
    images = status["images"]
    return CallCounts(
        images["positive"],
        images["review"],
        images["negative"],
        status["reviewed"],
        status["reviewer_agreed_with_label"],
        status["reviewer_decided"],
        status["reviewer_changed_call"],
    )


def load_screening(
    engine: Engine,
    run: Run,
    *,
    status: dict[str, Any] | None = None,
    archive_root: Path | None = None,
) -> ScreeningData | None:
    """The run's screening figures, or None when it has no policy (per-image labels only).

    `status` is the `screening` object of `status_dict`, when the caller has it: its counts
    are used rather than aggregated again. `archive_root` is where relative paths are read.
    """
    in_force = policy_in_force(engine, run)
    if in_force is None:
        return None
    cases = None
    if has_cases(engine, run.id):
        cases = sorted(case_rows(engine, run.id, in_force.policy), key=CaseRow.urgency)
    queue = [c for c in cases or [] if c.call in (CALL_POSITIVE, CALL_REVIEW)]
    flagged = flagged_images(engine, run, in_force, queue=queue)
    shown = [x.image_id for x in flagged[:MAX_THUMBNAILS]]
    with engine.connect() as conn:
        rows = conn.execute(select(Image.id, Image.location).where(Image.id.in_(shown))).all()
    thumbnails = {int(i): thumbnail_uri(bytes(loc), archive_root=archive_root) for i, loc in rows}
    counts = _counts_of(status) or call_counts(engine, run.id, in_force.policy)
    return ScreeningData(run.name, in_force, counts, cases, flagged, thumbnails)


def screening_block(data: ScreeningData | None) -> str:
    """The policy in force and the images (and cases) per final call, for the page's top."""
    if data is None:
        return (
            '<p class="note" id="screening">No screening policy: this run has per-image labels '
            "only (set one with <code>allscreen policy set</code>).</p>"
        )
    c = data.counts
    cards = [
        card(str(c.positive), "images positive", "bad" if c.positive else ""),
        card(str(c.review), "images to review", "warn" if c.review else ""),
        card(str(c.negative), "images negative", "good"),
    ]
    if data.cases is not None:
        for call, n in case_call_counts(data.cases).items():
            cards.append(card(str(n), f"cases {call}"))
    return (
        '<section id="screening"><h2>Screening</h2>'
        f"<p>Policy: {esc(data.in_force.policy.describe())}<br>"
        f'<span class="note">source: {esc(data.in_force.source)}. Final calls: a '
        "reviewer's verdict replaces the model's call.</span></p>"
        f'<div class="cards">{"".join(cards)}</div></section>'
    )


def _case_row(c: CaseRow) -> str:
    cells = [
        f"<td>{esc(c.name)}</td>",
        call_cell(c.call),
        *(
            f"<td class=n>{n}</td>"
            for n in (c.images, c.positive, c.review, c.negative, c.failed, c.pending)
        ),
        f"<td class=n>{num(c.max_positive_score)}</td>",
        f"<td class=n>{c.flagged_reviewed}/{c.flagged}</td>",
    ]
    return f"<tr>{''.join(cells)}</tr>"


def cases_section(data: ScreeningData | None) -> str:
    """The Cases section: every case, most urgent first (empty for a run without cases)."""
    if data is None or data.cases is None:
        return ""
    head = "".join(
        f"<th class=n>{h}</th>"
        for h in ("images", "positive", "review", "negative", "failed", "pending")
    )
    rows = "".join(_case_row(c) for c in data.cases[:MAX_CASES_LISTED])
    tail = more_note(
        len(data.cases) - MAX_CASES_LISTED,
        "cases",
        f"allscreen export {data.run_name} --cases --csv FILE",
    )
    return (
        f'<section id="cases"><h2>Cases: {len(data.cases)}</h2>'
        '<p class="note">Positive cases first, then review, pending and negative; each by its '
        "highest P(+) (1 - the negative score). <i>Reviewed</i>: flagged images with a "
        "verdict.</p>"
        f'<table id="case-table"><tr><th>case</th><th>call</th>{head}'
        f"<th class=n>max P(+)</th><th class=n>reviewed</th></tr>{rows}</table>{tail}</section>"
    )


def _tile(x: FlaggedImage, uri: str | None) -> str:
    if uri is None:
        picture = '<div class="ph">not readable here</div>'
    else:
        picture = f'<img src="{uri}" alt="{esc(x.path)}">'
    lines = [
        f'<b class="call-{esc(x.model_call)}">{esc(x.model_call)}</b>'
        + (f" · case {esc(x.case)}" if x.case else ""),
        esc(x.path),
        f"{esc(x.label or '?')} {num(x.confidence)} · P(+) {num(x.positive_score)}",
    ]
    if x.verdict is not None:
        lines.append(f"verdict: {esc(x.verdict)} ({esc(x.reviewer or '?')}) → {esc(x.final_call)}")
    return f'<div class="tile">{picture}<div>{"<br>".join(lines)}</div></div>'


def _agreement(c: CallCounts) -> str:
    if not c.reviewed:
        return '<p class="note" id="agreement">No reviewer verdict yet.</p>'
    share = pct(c.agreed_label / c.decided) if c.decided else "n/a"
    return (
        f'<p id="agreement">Reviewed {c.reviewed} images: reviewers agreed with the model\'s '
        f"label on {c.agreed_label} of {c.decided} ({share}); the call changed on "
        f"{c.changed_call}.</p>"
    )


def review_section(data: ScreeningData | None) -> str:
    """The Review section: each flagged image as a thumbnail with its scores and verdict."""
    if data is None:
        return ""
    if not data.flagged:
        return (
            '<section id="review"><h2>Review</h2><p>Nothing flagged: no image was called '
            f"positive or sent to review.</p>{_agreement(data.counts)}</section>"
        )
    shown = data.flagged[:MAX_THUMBNAILS]
    tiles = "".join(_tile(x, data.thumbnails.get(x.image_id)) for x in shown)
    tail = more_note(
        len(data.flagged) - MAX_THUMBNAILS,
        "flagged images",
        f"allscreen review {data.run_name} --csv FILE",
    )
    return (
        f'<section id="review"><h2>Review: {len(data.flagged)} flagged images</h2>'
        f"{_agreement(data.counts)}"
        '<p class="note">Images the model called positive or sent to review, in queue order, '
        "with the label, its confidence and P(+). Thumbnails are made where the archive is "
        "readable.</p>"
        f'<div class="tiles">{tiles}</div>{tail}</section>'
    )
