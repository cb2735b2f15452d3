"""`report RUN_A --compare RUN_B`: two runs of one archive side by side, as one HTML page.

Images are matched by content (sha256), so the two runs may have been submitted from other
paths or machines. Each run's calls are read under its own policy in force. Everything is
aggregated in the database in one grouped query; only the changed images that are listed
(at most `MAX_CHANGED_LISTED`) come back row by row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from allscreen.policy import CALLS
from allscreen.policy_store import InForce, policy_in_force
from allscreen.runs import find_run
from allscreen.schema import STATUS_DONE, Image, Run
from readout.calls import image_calls
from readout.html_parts import call_cell, card, esc, more_note, num, page, pct, write_page
from readout.report_data import ClassScore, class_scores_of
from readout.run_models import models_of_run

MAX_CHANGED_LISTED = 500  #: changed images listed one by one; the rest are counted
_NOT_COMPARED = (
    '<p class="note" id="calls">Calls are not compared: a run without a screening policy has '
    "labels only (set one with <code>allscreen policy set</code>).</p>"
)


@dataclass(frozen=True, slots=True)
class Side:
    """One of the two runs: its images, models and the policy in force."""

    run: Run
    in_force: InForce | None
    images: int
    models: list[str]


@dataclass(frozen=True, slots=True)
class Changed:
    """An image both runs classified whose call (or label) differs."""

    path: str
    truth: str | None
    a: tuple[str | None, float | None, float | None, str | None]  #: label, conf, P(+), call
    b: tuple[str | None, float | None, float | None, str | None]


@dataclass(slots=True)
class Comparison:
    """What the comparison page shows; `groups` counts common images by what each run said."""

    a: Side
    b: Side
    groups: Counter[tuple[Any, ...]]  #: (done_a, done_b, label_a, label_b, call_a, call_b, truth)
    changed: list[Changed]

    @property
    def by_call(self) -> bool:
        """Whether both runs have a policy, so their calls can be compared."""
        return self.a.in_force is not None and self.b.in_force is not None

    @property
    def both(self) -> int:
        """Images (by content) in both runs."""
        return sum(self.groups.values())

    def both_done(self) -> Counter[tuple[Any, ...]]:
        """The groups of images both runs classified: (label_a, label_b, call_a, call_b, truth)."""
        done: Counter[tuple[Any, ...]] = Counter()
        for k, n in self.groups.items():
            if k[0] and k[1]:
                done[k[2:]] += n
        return done

    def agreement(self, index: tuple[int, int]) -> tuple[int, int]:
        """Images both classified whose fields at `index` agree, and how many both classified."""
        done = self.both_done()
        same = sum(n for k, n in done.items() if k[index[0]] == k[index[1]])
        return same, sum(done.values())

    def changed_total(self) -> int:
        """Images both classified whose call (label without policies) differs."""
        same, total = self.agreement((2, 3) if self.by_call else (0, 1))
        return total - same

    def class_scores(self, side: int) -> list[ClassScore]:
        """Per-class precision and recall of run A (0) or B (1) on the images both judged."""
        pairs: Counter[tuple[str, str]] = Counter()
        for k, n in self.both_done().items():
            if k[4] is not None and k[side] is not None:
                pairs[k[4], k[side]] += n
        return class_scores_of(pairs)


def _side(engine: Engine, run: Run) -> tuple[Side, Any]:
    in_force = policy_in_force(engine, run)
    with engine.connect() as conn:
        images = int(conn.scalar(select(func.count()).where(Image.run_id == run.id)) or 0)
    models = [
        f"{m.name} v{m.version} ({(m.sha256 or '?')[:12]}, {m.done} images)"
        for m in models_of_run(engine, run.id)
    ]
    calls = image_calls(engine, run.id, in_force.policy if in_force else None).subquery()
    sub = (
        select(calls, Image.sha256, Image.path, Image.ground_truth)
        .join(Image, Image.id == calls.c.image_id)
        .subquery()
    )
    return Side(run, in_force, images, models), sub


def load_comparison(engine: Engine, run_a: Run, run_b: Run) -> Comparison:
    """Match the two runs' images by sha256 and aggregate what each run said about them."""
    (side_a, a), (side_b, b) = _side(engine, run_a), _side(engine, run_b)
    joined = a.join(b, a.c.sha256 == b.c.sha256)
    keys = [
        (a.c.status == STATUS_DONE).label("done_a"),
        (b.c.status == STATUS_DONE).label("done_b"),
        a.c.label.label("label_a"),
        b.c.label.label("label_b"),
        a.c.model_call.label("call_a"),
        b.c.model_call.label("call_b"),
        func.coalesce(a.c.ground_truth, b.c.ground_truth).label("truth"),
    ]
    grouped = select(*keys, func.count()).select_from(joined).group_by(*keys)
    differs = a.c.model_call != b.c.model_call if side_a.in_force and side_b.in_force else None
    changed = (
        select(a.c.path, keys[6], a.c.label, a.c.confidence, a.c.positive_score, a.c.model_call)
        .add_columns(b.c.label, b.c.confidence, b.c.positive_score, b.c.model_call)
        .select_from(joined)
        .where(
            a.c.status == STATUS_DONE,
            b.c.status == STATUS_DONE,
            differs if differs is not None else a.c.label != b.c.label,
        )
        .order_by(a.c.path)
        .limit(MAX_CHANGED_LISTED)
    )
    groups: Counter[tuple[Any, ...]] = Counter()
    with engine.connect() as conn:
        for r in conn.execute(grouped):
            # A pending image's `done` is NULL, a failed one's false: both count as not done.
            groups[(bool(r[0]), bool(r[1]), *r[2:7])] += int(r[7])
        rows = conn.execute(changed).all()
    listed = [Changed(r[0], r[1], (r[2], r[3], r[4], r[5]), (r[6], r[7], r[8], r[9])) for r in rows]
    return Comparison(side_a, side_b, groups, listed)


def _runs_table(c: Comparison) -> str:
    rows = []
    for name, s in (("A", c.a), ("B", c.b)):
        policy = (
            f"{esc(s.in_force.policy.describe())}<br><span class=note>{esc(s.in_force.source)}"
            "</span>"
            if s.in_force
            else '<span class="note">none (labels only)</span>'
        )
        rows.append(
            f"<tr><td>{name}</td><td>{esc(s.run.name)}</td><td class=n>{s.images}</td>"
            f"<td>{esc('; '.join(s.models) or 'no result yet')}</td><td>{policy}</td></tr>"
        )
    return (
        '<table id="runs"><tr><th></th><th>run</th><th class=n>images</th><th>model</th>'
        f"<th>policy in force</th></tr>{''.join(rows)}</table>"
    )


def _summary(c: Comparison) -> str:
    same_label, done = c.agreement((0, 1))
    cards = [
        card(str(c.both), "images in both runs"),
        card(str(c.a.images - c.both), f"only in A ({c.a.run.name})"),
        card(str(c.b.images - c.both), f"only in B ({c.b.run.name})"),
        card(str(done), "in both, classified by both"),
        card(pct(same_label / done if done else None), "label agreement", "good"),
    ]
    if c.by_call:
        same_call, _ = c.agreement((2, 3))
        cards.append(card(pct(same_call / done if done else None), "call agreement", "good"))
    return f'<div class="cards" id="agreement">{"".join(cards)}</div>'


def _calls(c: Comparison) -> str:
    if not c.by_call:
        return _NOT_COMPARED
    done = c.both_done()
    head = "".join(f"<th class=n>B {esc(x)}</th>" for x in CALLS)
    rows = "".join(
        f"<tr><th>A {esc(ca)}</th>"
        + "".join(
            f"<td class=n>{sum(n for k, n in done.items() if k[2] == ca and k[3] == cb)}</td>"
            for cb in CALLS
        )
        + "</tr>"
        for ca in CALLS
    )
    return (
        '<section id="calls"><h2>Calls</h2><p class="note">Images both runs classified, by '
        "the model's call in A (rows) and in B (columns), each under its own policy.</p>"
        f'<table id="call-matrix"><tr><th></th>{head}</tr>{rows}</table></section>'
    )


def _changed(c: Comparison) -> str:
    what = "call" if c.by_call else "label"
    total = c.changed_total()
    if not total:
        return f'<section id="changed"><h2>Changed</h2><p>No {what} changed.</p></section>'

    def cells(x: tuple[str | None, float | None, float | None, str | None]) -> str:
        return (
            f"<td>{esc(x[0] or '')}</td><td class=n>{num(x[1])}</td><td class=n>{num(x[2])}</td>"
            + call_cell(x[3])
        )

    rows = "".join(
        f"<tr><td>{esc(x.path)}</td><td>{esc(x.truth or '')}</td>{cells(x.a)}{cells(x.b)}</tr>"
        for x in c.changed
    )
    head = "<th>label</th><th class=n>conf</th><th class=n>P(+)</th><th>call</th>"
    where = f"allscreen export RUN --csv FILE, for {c.a.run.name} and {c.b.run.name}"
    tail = more_note(total - len(c.changed), "changed images", where)
    return (
        f'<section id="changed"><h2>Changed {what}: {total} images</h2>'
        f'<table id="changed-images"><tr><th></th><th></th><th colspan=4>A</th>'
        f"<th colspan=4>B</th></tr><tr><th>image (path in A)</th><th>truth</th>{head}{head}"
        f"</tr>{rows}</table>{tail}</section>"
    )


def _classes(c: Comparison) -> str:
    a = {x.label: x for x in c.class_scores(0)}
    b = {x.label: x for x in c.class_scores(1)}
    if not a:
        return (
            '<section id="classes"><h2>Per class</h2><p>No ground truth for the images both '
            "runs classified.</p></section>"
        )
    none = ClassScore("", 0, 0, None, None)
    rows = "".join(
        f"<tr><td>{esc(label)}</td><td class=n>{a.get(label, none).support}</td>"
        + "".join(
            f"<td class=n>{pct(getattr(s.get(label, none), what))}</td>"
            for what in ("precision", "recall")
            for s in (a, b)
        )
        + "</tr>"
        for label in sorted(a.keys() | b.keys())
    )
    return (
        '<section id="classes"><h2>Per class</h2><p class="note">On the images both runs '
        "classified whose ground truth is known.</p>"
        '<table id="class-scores-compare"><tr><th>class</th><th class=n>true images</th>'
        "<th class=n>precision A</th><th class=n>precision B</th><th class=n>recall A</th>"
        f"<th class=n>recall B</th></tr>{rows}</table></section>"
    )


def render_comparison(c: Comparison, *, now: datetime | None = None) -> str:
    """The whole comparison page."""
    made = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    title = f"{c.a.run.name} (A) and {c.b.run.name} (B)"
    body = "".join(
        [
            f"<h1>Comparing {esc(title)}</h1>",
            '<p class="sub">allscreen comparison · images matched by content (sha256) · '
            f"made {made}</p>",
            _runs_table(c),
            _summary(c),
            _calls(c),
            _changed(c),
            _classes(c),
        ]
    )
    return page(f"allscreen: {title}", body)


def write_comparison(engine: Engine, run_a: str, run_b: str, path: Path) -> None:
    """Write the comparison of two runs as one self-contained HTML file."""
    a, b = find_run(engine, run_a), find_run(engine, run_b)
    write_page(render_comparison(load_comparison(engine, a, b)), path, "comparison")
