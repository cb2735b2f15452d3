"""`report RUN_A --compare RUN_B`: two runs of one archive side by side (placeholder)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine


def write_comparison(engine: Engine, run_a: str, run_b: str, path: Path) -> None:
    """Write the comparison of two runs as one self-contained HTML file."""
    raise NotImplementedError
