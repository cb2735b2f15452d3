"""The report's figures, drawn by matplotlib (Agg canvas, no pyplot) and returned as inline SVG.

SVG keeps text sharp at any zoom and needs no image decoder; glyphs are written as paths, so
the file shows the same without any font installed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from readout.report_figures import Spread, Throughput

#: Inches per figure column; with 100 dpi-equivalent text this fits a 1000 px page column.
WIDTH_IN = 10.0
_PALETTE = "tab10"  #: distinct, colour-blind-aware colours, one per device
_SVG_START = re.compile(r"<svg\b")
_SVG_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}


def device_colours(devices: Sequence[str]) -> dict[str, str]:
    """A stable colour per device name (the same device keeps its colour in every figure)."""
    from matplotlib import colormaps

    cmap = colormaps[_PALETTE]
    return {d: to_hex(cmap(i % cmap.N)) for i, d in enumerate(sorted(devices))}


def _figure(height: float, ncols: int = 1) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def to_svg(fig: Figure) -> str:
    """The figure as an `<svg>` element ready to inline in HTML (no XML prologue, no RDF)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=_SVG_METADATA)
    text = buf.getvalue()
    start = _SVG_START.search(text)
    assert start is not None
    svg = text[start.start() :]
    # Inline SVG needs no namespace declarations, and leaving them out keeps the page free of
    # anything that looks like an external URL.
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    return svg.replace("xlink:href", "href")


def class_counts_svg(predicted: dict[str, int], truth: dict[str, int]) -> str:
    """Horizontal bars: images per predicted class, beside the ground-truth count if known."""
    labels = sorted(set(predicted) | set(truth))
    fig, (ax,) = _figure(0.5 + 0.55 * max(len(labels), 1))
    ys = list(range(len(labels)))
    h = 0.4 if truth else 0.7
    bars = ax.barh(
        [y - (h / 2 if truth else 0) for y in ys],
        [predicted.get(x, 0) for x in labels],
        height=h,
        color="#3465a4",
        label="predicted",
    )
    ax.bar_label(bars, padding=3)
    if truth:
        tbars = ax.barh(
            [y + h / 2 for y in ys],
            [truth.get(x, 0) for x in labels],
            height=h,
            color="#babdb6",
            label="ground truth",
        )
        ax.bar_label(tbars, padding=3, color="#555753")
        ax.legend(loc="lower right", frameon=False)
    ax.set_yticks(ys, labels)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.margins(x=0.12)
    ax.spines[["top", "right"]].set_visible(False)
    return to_svg(fig)


def confusion_svg(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> str:
    """Heatmap of true (rows) against predicted (columns); colour is the row's share."""
    n = max(len(labels), 1)
    fig = Figure(figsize=(min(WIDTH_IN, 2.6 + 0.9 * n), 1.5 + 0.85 * n), layout="compressed")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    shares = [[c / (sum(row) or 1) for c in row] for row in matrix]
    im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            share = shares[i][j]
            ax.text(
                j,
                i,
                f"{count}\n{share:.0%}",
                ha="center",
                va="center",
                fontsize=11,
                color="white" if share > 0.55 else "#2e3436",
            )
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    return to_svg(fig)


def _box(ax: Axes, data: dict[str, Spread], colours: dict[str, str], unit: str) -> None:
    names = list(data)
    stats = [
        {
            "label": name,
            "med": data[name].p50,
            "q1": data[name].p25,
            "q3": data[name].p75,
            "whislo": data[name].p5,
            "whishi": data[name].p95,
            "fliers": [],
        }
        for name in names
    ]
    parts = ax.bxp(
        stats,
        orientation="horizontal",
        widths=0.6,
        patch_artist=True,
        showfliers=False,
        medianprops={"color": "black"},
    )
    for patch, name in zip(parts["boxes"], names, strict=True):
        patch.set_facecolor(colours[name])
        patch.set_alpha(0.75)
    ticks = [f"{n}\np50 {data[n].p50:.3g} · p95 {data[n].p95:.3g}" for n in names]
    ax.set_yticks(range(1, len(names) + 1), ticks)
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    low = min(s.p5 for s in data.values())
    high = max(s.p95 for s in data.values())
    if low > 0 and high / low > 50:
        ax.set_xscale("log")
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def latency_svg(
    inference_ms: dict[str, Spread],
    queue_to_result_s: dict[str, Spread],
    colours: dict[str, str],
) -> str:
    """Per-device distributions: inference (ms) and queue-to-result (s); whiskers p5..p95."""
    fig, (left, right) = _figure(1.4 + 0.6 * max(len(inference_ms), 1), ncols=2)
    timed = {d: v for d, v in inference_ms.items() if d in colours}
    if timed:  # results from a model that reports no timing have none to plot
        _box(left, timed, colours, "inference, ms")
    left.set_title("model inference per image", loc="left", fontsize=11)
    waits = {d: v for d, v in queue_to_result_s.items() if d in colours}
    if waits:
        _box(right, waits, colours, "queued to result, s")
    right.set_title("batch queued to image result", loc="left", fontsize=11)
    return to_svg(fig)


def throughput_svg(data: Throughput | None, colours: dict[str, str]) -> str:
    """Images per second over the run, per device and for the whole fleet."""
    fig, (ax,) = _figure(3.6)
    counted = {d: c for d, c in (data.counts if data else {}).items() if d in colours}
    if data is not None and counted:
        width = data.width
        edges = data.edges
        nbins = len(edges) - 1
        total = [0.0] * nbins
        for device, counts in counted.items():
            padded = [float(c) for c in counts] + [0.0] * (nbins - len(counts))
            total = [a + b for a, b in zip(total, padded, strict=True)]
            ax.stairs(
                [c / width for c in padded],
                edges,
                color=colours[device],
                label=device,
                linewidth=1.6,
                zorder=3,
            )
        if len(counted) > 1:  # drawn wide and grey underneath, so device lines stay visible
            ax.stairs(
                [c / width for c in total],
                edges,
                color="#888a85",
                label="fleet",
                linewidth=4,
                alpha=0.6,
                zorder=2,
            )
        ax.set_xlim(0, edges[-1])
        ax.set_title(f"bins of {width:.3g} s", loc="left", fontsize=9, color="#555753")
    ax.set_xlabel("seconds since the first result")
    ax.set_ylabel("images / s")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, ncols=6)
    ax.spines[["top", "right"]].set_visible(False)
    return to_svg(fig)
