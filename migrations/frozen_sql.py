"""SQL that a migration runs, frozen as it was when the migration was written.

A migration must do the same thing in a year as today, so it may not import application code
that later edits change. Migrations whose SQL is generated (the tally triggers of 0007) run a
snapshot of it from `migrations/frozen/<revision>.json` instead. The application keeps
generating the same SQL for itself (`allscreen/tally_sql.py`, `allscreen/tallies.py`); a test
(`tests/allscreen/test_frozen_sql.py`) fails when the code no longer matches the newest
snapshot, which means: write a migration that recreates the triggers, and freeze its SQL.

Freeze the code's SQL now (from the repository root)::

    .venv/bin/python -m migrations.frozen_sql 0007
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FROZEN = Path(__file__).resolve().parent / "frozen"
DIALECTS = ("postgresql", "sqlite")


def load(revision: str) -> dict[str, Any]:
    """The snapshot frozen for `revision`."""
    data: dict[str, Any] = json.loads((FROZEN / f"{revision}.json").read_text(encoding="utf-8"))
    return data


def current_tallies() -> dict[str, Any]:
    """The tally SQL the application generates now, per dialect (imports application code)."""
    from allscreen import tally_sql
    from allscreen.tallies import BUCKET_EDGES, rebuild_statements

    return {
        "buckets": list(BUCKET_EDGES),
        "rebuild": {d: rebuild_statements(d) for d in DIALECTS},
        "create_triggers": {d: tally_sql.trigger_ddl(d) for d in DIALECTS},
        "drop_triggers": {d: tally_sql.drop_ddl(d) for d in DIALECTS},
    }


def main(argv: Sequence[str]) -> int:
    """Write the code's tally SQL as the snapshot of revision `argv[0]`."""
    if len(argv) != 1:
        print("usage: python -m migrations.frozen_sql REVISION", file=sys.stderr)
        return 2
    path = FROZEN / f"{argv[0]}.json"
    path.write_text(json.dumps(current_tallies(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
