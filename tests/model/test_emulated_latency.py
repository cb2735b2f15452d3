"""The reference runner emulates a slower device: a latency floor per inference."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from edge_impulse_linux.image import ImageImpulseRunner, get_features_from_image_with_studio_mode

from tests.model.conftest import EIM_PATH, Started, model_side, stop_runner

pytestmark = pytest.mark.timeout(120)


def _features() -> list[int]:
    side = model_side()
    rgb = np.random.default_rng(1).integers(0, 256, (side, side, 3), dtype=np.uint8)
    features, _ = get_features_from_image_with_studio_mode(rgb, "squash", side, side, False)
    return list(features)


def test_every_inference_takes_at_least_the_emulated_latency(
    start_runner: Callable[..., Started], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLSCREEN_EIM_LATENCY_MS", "60")
    runner = start_runner().runner
    features = _features()
    for _ in range(3):
        t0 = time.perf_counter()
        res = runner.classify(features)
        assert time.perf_counter() - t0 >= 0.060
        # A floor, not an addition: the network's own fraction of a millisecond is inside it.
        assert 60 <= res["timing"]["classification"] < 120


def test_a_bad_latency_is_served_as_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLSCREEN_EIM_LATENCY_MS", "-5")
    runner = ImageImpulseRunner(str(EIM_PATH))
    try:
        with pytest.raises(Exception, match="ALLSCREEN_EIM_LATENCY_MS"):
            runner.init()
    finally:
        stop_runner(runner, runner._runner)
