"""Tables for people, drawn by rich: aligned columns, width handled, plain text (no colour).

Rendered to a string so a command prints the same bytes to a terminal, a pipe or a log.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Console
from rich.table import Table

TABLE_WIDTH = 120  #: columns the table may use; wide enough for a path and its figures


def table_text(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    right: Iterable[str] = (),
    indent: int = 0,
) -> str:
    """`rows` under `columns` as plain text; columns named in `right` are right-aligned."""
    numeric = set(right)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1))
    for name in columns:
        table.add_column(name, justify="right" if name in numeric else "left", no_wrap=True)
    for row in rows:
        table.add_row(*("-" if x is None else str(x) for x in row))
    out = io.StringIO()
    Console(file=out, width=TABLE_WIDTH, color_system=None, force_terminal=False).print(table)
    pad = " " * indent
    return "\n".join(pad + line.rstrip() for line in out.getvalue().splitlines() if line.strip())
