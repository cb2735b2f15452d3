"""The served model's calibrated scores and screening operating point.

``hello`` is read through the real ``edge_impulse_linux`` ``ImageImpulseRunner`` talking to
``model/allscreen-all.eim``; the rules that chose the operating point are checked on small
hand-made cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from model.calibration import apply_temperature, ece, fit_temperature, reliability
from model.eim_protocol import SCREENING_KEYS, ModelInfo, hello_reply
from model.screening import (
    NEGATIVE,
    POSITIVE,
    REVIEW,
    choose_min_confidence,
    choose_min_negative_score,
    decide,
    review_table,
)
from tests.model.conftest import REPO_ROOT, Started
from tests.model.test_eim_server import packed_features

pytestmark = pytest.mark.timeout(180)

CALIBRATION = REPO_ROOT / "model" / "calibration.json"
BASE_META = {
    "labels": json.dumps(["Benign", "Early", "Pre", "Pro"]),
    "project_name": "p",
    "deploy_version": "4",
    "input_size": "96",
}


def metadata(path: Path) -> dict[str, str]:
    """The model's ONNX ``metadata_props``."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta: dict[str, str] = session.get_modelmeta().custom_metadata_map
    return meta


def test_hello_reports_the_screening_operating_point_the_model_was_built_with(
    start_runner: Callable[..., Started], onnx_model: Path
) -> None:
    meta = metadata(onnx_model)
    if not all(key in meta for key in SCREENING_KEYS):
        pytest.skip(f"{onnx_model} carries no screening operating point")
    thresholds = start_runner().info["model_parameters"]["thresholds"]
    assert thresholds == [
        {
            "id": 0,
            "type": "screening",
            "negative_labels": ["Benign"],
            "min_negative_score": float(meta["screening_min_negative_score"]),
            "min_confidence": float(meta["screening_min_confidence"]),
            "min_positive_images": 1,
        }
    ]
    if onnx_model.resolve() == (REPO_ROOT / "model" / "all_cnn96.onnx").resolve():
        chosen = json.loads(CALIBRATION.read_text())["screening"]  # what the card reports
        assert thresholds[0]["min_negative_score"] == chosen["min_negative_score"]
        assert thresholds[0]["min_confidence"] == chosen["min_confidence"]


def test_the_served_scores_are_the_network_logits_divided_by_the_temperature(
    start_runner: Callable[..., Started], onnx_model: Path
) -> None:
    meta = metadata(onnx_model)
    if "temperature" not in meta:
        pytest.skip(f"{onnx_model} is not calibrated")
    temperature = float(meta["temperature"])
    assert temperature != pytest.approx(1.0, abs=1e-3)
    runner = start_runner().runner
    session = ort.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
    for seed in range(3):
        features = packed_features(seed)
        served = runner.classify(features)["result"]["classification"]
        packed = np.asarray(features, dtype=np.uint32)
        rgb = np.stack([packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF], axis=-1)
        side = int(np.sqrt(len(features)))
        pixels = (rgb.astype(np.float32) / np.float32(255.0)).reshape(1, side, side, 3)
        (logits,) = session.run(["logits"], {"image": pixels})
        z = logits[0].astype(np.float64) / temperature
        calibrated = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        raw = np.exp(logits[0] - logits[0].max()) / np.exp(logits[0] - logits[0].max()).sum()
        assert list(served.values()) == pytest.approx(calibrated.tolist(), abs=1e-5)
        assert not np.allclose(list(served.values()), raw, atol=1e-4)


def test_a_model_without_screening_metadata_reports_no_thresholds() -> None:
    reply = hello_reply(1, ModelInfo.from_metadata(BASE_META), None)
    assert reply["model_parameters"]["thresholds"] == []


def test_screening_metadata_must_be_complete_and_name_model_labels() -> None:
    with pytest.raises(ValueError, match="all of"):
        ModelInfo.from_metadata({**BASE_META, "screening_min_confidence": "0.9"})
    bad_label = {
        "screening_negative_labels": json.dumps(["Healthy"]),
        "screening_min_negative_score": "0.9",
        "screening_min_confidence": "0.8",
    }
    with pytest.raises(ValueError, match="list of model labels"):
        ModelInfo.from_metadata({**BASE_META, **bad_label})


def test_decisions_follow_the_application_rule() -> None:
    probs = np.array(
        [
            [0.97, 0.01, 0.01, 0.01],  # sure Benign: negative
            [0.80, 0.20, 0.00, 0.00],  # Benign on top but below t: review
            [0.02, 0.96, 0.01, 0.01],  # sure Early: positive
            [0.30, 0.60, 0.05, 0.05],  # Early on top but unsure: review
        ]
    )
    assert decide(probs, t=0.9, r=0.7).tolist() == [NEGATIVE, REVIEW, POSITIVE, REVIEW]


def test_t_lets_at_most_one_all_image_in_400_be_called_benign() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 100 + [1] * 800, dtype=np.int64)
    p_benign = np.concatenate([rng.uniform(0.6, 1.0, 100), rng.uniform(0.0, 0.5, 800)])
    p_benign[100:103] = [0.95, 0.9, 0.85]  # the three most Benign-looking ALL images
    probs = np.stack([p_benign, 1 - p_benign, np.zeros(900), np.zeros(900)], axis=1)
    t = choose_min_negative_score(probs, labels)  # 800 ALL images: at most 2 above t
    assert t == 0.851
    assert int((p_benign[labels > 0] >= t).sum()) == 2


def test_r_is_the_smallest_band_with_the_fewest_screening_errors_within_the_cap() -> None:
    probs = np.array([[0.05, 0.6, 0.3, 0.05]] + [[0.02, 0.96, 0.01, 0.01]] * 99)
    labels = np.array([0] + [1] * 99, dtype=np.int64)  # one Benign image called Early
    table = review_table(probs, labels, t=0.9)
    assert choose_min_confidence(table) == 0.61  # reviews 1%: the false alarm is caught
    assert choose_min_confidence(table, max_review_share=0.0) == 0.6  # nothing may go


def test_temperature_scaling_fixes_over_confident_scores() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (4000, 4))
    true_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    # Labels drawn from the probabilities themselves: those are calibrated by construction.
    labels = np.array([rng.choice(4, p=p) for p in true_probs], dtype=np.int64)
    sharp = apply_temperature(true_probs, 0.5)  # the same ranking, twice as sure
    temperature = fit_temperature(sharp, labels)
    assert temperature == pytest.approx(2.0, rel=0.1)
    assert ece(apply_temperature(sharp, temperature), labels) < ece(sharp, labels) / 2
    assert reliability(sharp, labels).count.sum() == 4000
