"""The chaos soak, short: every fault at once, and still exactly one row per image.

`bench/chaos_soak.py` is the long run (20,000 images, BENCHMARKS.md section 8); CI runs this
one, a few hundred images in small batches on a slowed model, so that every fault of the seeded
schedule lands while work is in flight.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos_soak import REASONS, describe, soak

pytestmark = pytest.mark.slow


def test_a_run_hit_by_every_fault_at_once_ends_with_one_row_per_image(
    broker_url: str, pg_url: str, tmp_path: Path
) -> None:
    # The fixtures only make sure Redis and PostgreSQL are here (skip locally, fail in CI);
    # the soak breaks its own throwaway Redis and a proxy in front of its own database.
    outcome = soak(300, tmp_path, seed=8, children=1, workers=1, batch_size=16, delay_ms=40)
    print(describe(outcome))  # shown with -s, and on failure
    kinds = sorted(f.kind for f in outcome.faults)
    assert kinds == ["child", "database", "redis", "worker"]
    assert outcome.images == 302
    assert {Path(p).stem: e for p, e in outcome.failed.items()}.keys() == {
        f"planted-{name}" for name in REASONS
    }
