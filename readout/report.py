"""`allscreen report RUN --html FILE`: one self-contained HTML page about a run.

Everything is inline (styles, SVG figures, thumbnails as `data:` URIs): no script, no font, no
link leaves the file, so it opens offline, in a mail attachment or on an air-gapped review
machine alike. The screening parts (policy, Cases, Review) are in `readout.report_screening`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from allscreen.durations import format_duration
from allscreen.runs import find_run
from readout.html_parts import card, esc, more_note, page, pct, write_page
from readout.report_data import MAX_FAILURES_LISTED, ReportData, load_report
from readout.report_screening import cases_section, review_section, screening_block


def _figure(fig_id: str, svg: str, caption: str) -> str:
    return f'<figure id="{fig_id}">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def _summary(data: ReportData) -> str:
    s = data.status
    cards = [
        card(f"{s['total']}", "images"),
        card(f"{s['done']}", "done", "good" if s["done"] else ""),
        card(f"{s['failed']}", "failed", "bad" if s["failed"] else ""),
    ]
    if s["pending"]:
        cards.append(card(f"{s['pending']}", "pending (no result yet)"))
    if s["seconds"]:
        cards.append(card(format_duration(s["seconds"]), "duration (queued to last result)"))
        cards.append(card(f"{s['images_per_second']:.1f}", "images / s"))
    if s["accuracy"] is not None:
        cards.append(card(pct(s["accuracy"]), f"accuracy ({data.judged} judged)", "good"))
    cards.append(card(str(len(s["devices"])), "devices"))
    models = ", ".join(data.models) or "no result yet"
    return (
        f'<div class="cards" id="summary">{"".join(cards)}</div>'
        f'<p class="note">model: {esc(models)}</p>'
    )


def _classes(data: ReportData) -> str:
    from readout.report_plots import class_counts_svg

    predicted = dict(data.predicted_counts())
    if not predicted:
        return "<section><h2>Predicted classes</h2><p>No image classified yet.</p></section>"
    svg = class_counts_svg(predicted, dict(data.truth_counts()))
    caption = "Images per predicted class" + (
        ", beside the ground-truth count." if data.truth_counts() else "."
    )
    return f"<section><h2>Predicted classes</h2>{_figure('class-counts', svg, caption)}</section>"


def _accuracy(data: ReportData) -> str:
    from readout.report_plots import confusion_svg

    if not data.judged:
        return (
            "<section><h2>Accuracy</h2><p>No ground truth for this run "
            "(submit with <code>--labels folder</code> or <code>filename</code>).</p></section>"
        )
    rows = "".join(
        f"<tr><td>{esc(c.label)}</td><td class=n>{c.support}</td><td class=n>{c.predicted}</td>"
        f"<td class=n>{pct(c.precision)}</td><td class=n>{pct(c.recall)}</td></tr>"
        for c in data.class_scores()
    )
    table = (
        '<table id="class-scores"><tr><th>class</th><th class=n>true images</th>'
        "<th class=n>predicted</th><th class=n>precision</th><th class=n>recall</th></tr>"
        f"{rows}</table>"
    )
    svg = confusion_svg(data.labels(), data.confusion())
    caption = (
        "Confusion matrix: rows are the true class, columns the prediction; each cell gives "
        "the count and its share of the row (that class's recall on the diagonal)."
    )
    return (
        f"<section><h2>Accuracy: {pct(data.status['accuracy'])}</h2>"
        f'<div class="row">{table}{_figure("confusion-matrix", svg, caption)}</div></section>'
    )


def _devices(data: ReportData) -> str:
    from readout.report_plots import device_colours, latency_svg, throughput_svg

    names = sorted(d["device"] for d in data.status["devices"] if d["done"])
    if not names:
        return ""
    colours = device_colours(names)
    rows = "".join(
        f"<tr><td>{esc(d['device'])}</td><td class=n>{d['done']}</td><td class=n>{d['failed']}</td>"
        f"<td class=n>{_ms(d['p50_ms'])}</td><td class=n>{_ms(d['p95_ms'])}</td></tr>"
        for d in data.status["devices"]
    )
    table = (
        '<table id="devices"><tr><th>device</th><th class=n>done</th><th class=n>failed</th>'
        f"<th class=n>p50 ms</th><th class=n>p95 ms</th></tr>{rows}</table>"
    )
    lat = _figure(
        "latency-per-device",
        latency_svg(data.inference, data.waited, colours),
        "Latency per device. Boxes span the middle half, the line is the median (p50), "
        "whiskers reach p5 and p95. Percentiles are read from log-spaced buckets, within "
        "7.5 % of the exact values.",
    )
    thr = _figure(
        "throughput-over-time",
        throughput_svg(data.throughput, colours),
        "Results written per second, per device and (wide grey line) for the whole fleet.",
    )
    return f"<section><h2>Devices</h2>{table}{lat}{thr}</section>"


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _failures(data: ReportData) -> str:
    failures = data.failures
    if not failures:
        return '<section id="failures"><h2>Failures</h2><p>None.</p></section>'
    reasons = "".join(
        f"<tr><td class=n>{n}</td><td class=err>{esc(reason)}</td></tr>"
        for reason, n in data.failure_reasons()
    )
    listed = "".join(
        f"<tr><td>{esc(x.path)}</td><td>{esc(x.device or '')}</td>"
        f"<td class=err>{esc(x.error or '')}</td></tr>"
        for x in data.failures_listed[:MAX_FAILURES_LISTED]
    )
    tail = more_note(failures - len(data.failures_listed), "failures", "allscreen export")
    return (
        f'<section id="failures"><h2>Failures: {failures}</h2>'
        f"<table><tr><th class=n>images</th><th>reason</th></tr>{reasons}</table>"
        f"<table><tr><th>image</th><th>device</th><th>error</th></tr>{listed}</table>{tail}"
        "</section>"
    )


def render_report(data: ReportData, *, now: datetime | None = None) -> str:
    """The whole report page for `data`."""
    run = data.run
    made = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(
        [
            f"<h1>Run {esc(run.name)}</h1>",
            f'<p class="sub">allscreen screening report · run id {run.id} · made {made}</p>',
            _summary(data),
            screening_block(data.screening),
            cases_section(data.screening),
            review_section(data.screening),
            _classes(data),
            _accuracy(data),
            _devices(data),
            _failures(data),
        ]
    )
    return page(f"allscreen: run {run.name}", body)


def write_report(engine: Engine, ref: str, path: Path, *, archive_root: Path | None = None) -> None:
    """Write run `ref`'s report to `path` (written whole, then renamed into place); thumbnails
    of a run that stores relative paths are read under `archive_root`."""
    run = find_run(engine, ref)
    write_page(render_report(load_report(engine, run, archive_root=archive_root)), path, "report")
