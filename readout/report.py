"""`allscreen report RUN --html FILE`: one self-contained HTML page about a run.

Everything is inline (styles, SVG figures): no script, no font, no link leaves the file, so it
opens offline, in a mail attachment or on an air-gapped review machine alike.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from allscreen.durations import format_duration
from allscreen.errors import ConfigError
from allscreen.runs import find_run
from readout.report_data import MAX_FAILURES_LISTED, ReportData, load_report

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #2e3436; margin: 0; background: #f6f7f9; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 10px; }
.sub { color: #555753; margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; }
.card { background: #fff; border-radius: 8px; padding: 10px 14px; box-shadow: 0 1px 2px #0002; }
.card b { display: block; font-size: 24px; } .card span { color: #555753; font-size: 13px; }
.card.bad b { color: #a40000; } .card.good b { color: #4e9a06; }
section { background: #fff; border-radius: 8px; padding: 4px 18px 14px; margin-top: 18px;
          box-shadow: 0 1px 2px #0002; }
figure { margin: 8px 0; } figcaption { color: #555753; font-size: 13px; }
figure svg { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 4px 12px 4px 0; text-align: left; border-bottom: 1px solid #e5e5e5; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.err { font-family: ui-monospace, monospace; font-size: 13px; }
.note { color: #555753; }
.row { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-start; }
.row figure { flex: 1 1 420px; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _card(value: str, name: str, cls: str = "") -> str:
    return f'<div class="card {cls}"><b>{_e(value)}</b><span>{_e(name)}</span></div>'


def _figure(fig_id: str, svg: str, caption: str) -> str:
    return f'<figure id="{fig_id}">{svg}<figcaption>{_e(caption)}</figcaption></figure>'


def _summary(data: ReportData) -> str:
    s = data.status
    cards = [
        _card(f"{s['total']}", "images"),
        _card(f"{s['done']}", "done", "good" if s["done"] else ""),
        _card(f"{s['failed']}", "failed", "bad" if s["failed"] else ""),
    ]
    if s["pending"]:
        cards.append(_card(f"{s['pending']}", "pending (no result yet)"))
    if s["seconds"]:
        cards.append(_card(format_duration(s["seconds"]), "duration (queued to last result)"))
        cards.append(_card(f"{s['images_per_second']:.1f}", "images / s"))
    if s["accuracy"] is not None:
        cards.append(_card(_pct(s["accuracy"]), f"accuracy ({len(data.judged)} judged)", "good"))
    cards.append(_card(str(len(s["devices"])), "devices"))
    models = ", ".join(data.models) or "no result yet"
    return (
        f'<div class="cards" id="summary">{"".join(cards)}</div>'
        f'<p class="note">model: {_e(models)}</p>'
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
        f"<tr><td>{_e(c.label)}</td><td class=n>{c.support}</td><td class=n>{c.predicted}</td>"
        f"<td class=n>{_pct(c.precision)}</td><td class=n>{_pct(c.recall)}</td></tr>"
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
        f"<section><h2>Accuracy: {_pct(data.status['accuracy'])}</h2>"
        f'<div class="row">{table}{_figure("confusion-matrix", svg, caption)}</div></section>'
    )


def _devices(data: ReportData) -> str:
    from readout.report_plots import device_colours, latency_svg, throughput_svg

    groups = data.by_device()
    if not groups:
        return ""
    colours = device_colours(list(groups))
    inference = {
        d: [x.inference_ms for x in xs if x.inference_ms is not None] for d, xs in groups.items()
    }
    waited = {
        d: [w for x in xs if (w := x.queue_to_result_s) is not None] for d, xs in groups.items()
    }
    finished = {d: [x.finished_at for x in xs if x.finished_at] for d, xs in groups.items()}
    rows = "".join(
        f"<tr><td>{_e(d['device'])}</td><td class=n>{d['done']}</td><td class=n>{d['failed']}</td>"
        f"<td class=n>{_ms(d['p50_ms'])}</td><td class=n>{_ms(d['p95_ms'])}</td></tr>"
        for d in data.status["devices"]
    )
    table = (
        '<table id="devices"><tr><th>device</th><th class=n>done</th><th class=n>failed</th>'
        f"<th class=n>p50 ms</th><th class=n>p95 ms</th></tr>{rows}</table>"
    )
    lat = _figure(
        "latency-per-device",
        latency_svg(inference, waited, colours),
        "Latency per device. Boxes span the middle half, the line is the median (p50), "
        "whiskers reach p5 and p95; dots are outliers.",
    )
    thr = _figure(
        "throughput-over-time",
        throughput_svg(finished, colours),
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
        f"<tr><td class=n>{n}</td><td class=err>{_e(reason)}</td></tr>"
        for reason, n in data.failure_reasons()
    )
    listed = "".join(
        f"<tr><td>{_e(x.path)}</td><td>{_e(x.device or '')}</td><td class=err>{_e(x.error or '')}"
        "</td></tr>"
        for x in failures[:MAX_FAILURES_LISTED]
    )
    more = len(failures) - MAX_FAILURES_LISTED
    tail = f'<p class="note">… and {more} more (see `allscreen export`).</p>' if more > 0 else ""
    return (
        f'<section id="failures"><h2>Failures: {len(failures)}</h2>'
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
            f"<h1>Run {_e(run.name)}</h1>",
            f'<p class="sub">allscreen screening report · run id {run.id} · made {made}</p>',
            _summary(data),
            _classes(data),
            _accuracy(data),
            _devices(data),
            _failures(data),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>allscreen: run {_e(run.name)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def write_report(engine: Engine, ref: str, path: Path) -> None:
    """Write run `ref`'s report to `path` (written whole, then renamed into place)."""
    run = find_run(engine, ref)
    page = render_report(load_report(engine, run))
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the report to {path}: {exc.strerror or exc}") from exc
