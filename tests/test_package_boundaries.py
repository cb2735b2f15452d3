"""The two sides of the data path stay apart: they meet only in the shared core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imported_packages(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        if path.name == "__main__.py":  # `python -m allscreen` runs the command line
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
    return found


@pytest.mark.parametrize(("package", "other"), [("producer", "readout"), ("readout", "producer")])
def test_the_producer_and_the_read_side_never_import_each_other(package: str, other: str) -> None:
    assert other not in _imported_packages(package)


SIDES = {"producer", "readout", "worker", "reviewweb", "cli"}


def test_the_shared_core_imports_no_side_and_not_the_command_line() -> None:
    assert not _imported_packages("allscreen") & SIDES


def test_a_device_needs_only_the_core_and_the_worker() -> None:
    assert not _imported_packages("worker") & (SIDES - {"worker"})
