"""The pieces every allscreen HTML page shares: its style, escaping, cards, and safe writing.

Pages are one self-contained file (no script, font or link leaves it), so the style is inline
and the page is written whole, then renamed into place.
"""

from __future__ import annotations

import html
from pathlib import Path

from allscreen.errors import ConfigError

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #2e3436; margin: 0; background: #f6f7f9; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 10px; }
.sub { color: #555753; margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 10px; }
.card { background: #fff; border-radius: 8px; padding: 10px 14px; box-shadow: 0 1px 2px #0002; }
.card b { display: block; font-size: 24px; } .card span { color: #555753; font-size: 13px; }
.card.bad b { color: #a40000; } .card.good b { color: #4e9a06; } .card.warn b { color: #c4a000; }
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
.call-positive { color: #a40000; font-weight: 600; } .call-review { color: #ce5c00; }
.call-negative { color: #4e9a06; } .call-pending { color: #555753; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr));
         gap: 10px; margin: 8px 0; }
.tile { display: flex; gap: 8px; border: 1px solid #e5e5e5; border-radius: 6px; padding: 6px;
        font-size: 12px; line-height: 1.35; overflow-wrap: anywhere; }
.tile img, .tile .ph { flex: none; width: 96px; height: 96px; object-fit: contain;
                       background: #eeeeec; border-radius: 4px; }
.tile .ph { display: flex; align-items: center; justify-content: center; text-align: center;
            color: #555753; font-size: 11px; background: #d3d7cf; }
"""


def esc(value: object) -> str:
    """`value` as text safe inside HTML content and quoted attributes."""
    return html.escape(str(value), quote=True)


def pct(x: float | None) -> str:
    """A share as a percentage with one decimal, or `n/a`."""
    return "n/a" if x is None else f"{x:.1%}"


def num(x: float | None, digits: int = 3) -> str:
    """A score with `digits` decimals, or an empty string."""
    return "" if x is None else f"{x:.{digits}f}"


def card(value: str, name: str, cls: str = "") -> str:
    """One summary card: a big value over its name."""
    return f'<div class="card {cls}"><b>{esc(value)}</b><span>{esc(name)}</span></div>'


def call_cell(call: str | None) -> str:
    """A table cell naming a call, coloured by what it means."""
    if call is None:
        return "<td></td>"
    return f'<td class="call-{esc(call)}">{esc(call)}</td>'


def more_note(more: int, what: str, where: str) -> str:
    """`… and N more WHAT (see WHERE).` when some rows were left out, else nothing."""
    if more <= 0:
        return ""
    return f'<p class="note">… and {more} more {esc(what)} (see <code>{esc(where)}</code>).</p>'


def page(title: str, body: str) -> str:
    """A whole page around `body`, with the shared style inline."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def write_page(text: str, path: Path, what: str) -> None:
    """Write `text` to `path` whole (to a temporary name, then renamed into place)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the {what} to {path}: {exc.strerror or exc}") from exc
