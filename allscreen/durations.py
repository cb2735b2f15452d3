"""Durations as people read them."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """`1:02:03` or `2:03`."""
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
