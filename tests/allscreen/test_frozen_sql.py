"""Migrations run the SQL frozen when they were written, never the application's code."""

from __future__ import annotations

import ast
from pathlib import Path

from migrations.frozen_sql import FROZEN, current_tallies, load

VERSIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"
APP_PACKAGES = {"allscreen", "cli", "worker", "producer", "readout", "reviewweb", "model"}


def test_no_migration_imports_application_code() -> None:
    for path in sorted(VERSIONS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in APP_PACKAGES, f"{path.name} imports {name}"


def test_the_newest_tally_snapshot_is_what_the_code_generates() -> None:
    newest = sorted(p.stem for p in FROZEN.glob("*.json"))[-1]
    assert load(newest) == current_tallies(), (
        f"allscreen's tally SQL no longer matches migrations/frozen/{newest}.json: write a "
        "migration that recreates the tally triggers, then freeze its SQL with "
        "`python -m migrations.frozen_sql <its revision>`"
    )
