"""Export of the served graph to ONNX, with the metadata the ``.eim`` server reads.

The graph takes the production features unchanged: float32 ``[N, S, S, 3]`` RGB HWC in 0..1
named ``image``, and returns ``probs`` ``[N, 4]`` (calibrated, Benign, Early, Pre, Pro) and
``logits`` ``[N, 4]`` (before the temperature). The metadata carries the labels, the input
size, the project identity, the temperature and the screening operating point (see
:class:`model.eim_protocol.ModelInfo` for how ``hello`` reports them).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
import torch

from model.eim_protocol import SCREENING_KEYS
from model.evaluate import INPUT_SIZE
from model.metrics import LABELS
from model.net import ServedModel

PROJECT_NAME = "allscreen ALL reference"
DEPLOY_VERSION = "4"
OPSET = 17


def calibration_metadata(calibration: Mapping[str, Any] | None) -> dict[str, str]:
    """ONNX metadata of a :mod:`model.calibrate` result: temperature and operating point.

    ``None`` (an uncalibrated export) gives no keys, so ``hello`` reports no thresholds.
    """
    if calibration is None:
        return {}
    point = calibration["screening"]
    labels_key, score_key, confidence_key = SCREENING_KEYS
    return {
        "temperature": f"{float(calibration['temperature']):.4f}",
        labels_key: json.dumps(list(point["negative_labels"])),
        score_key: f"{float(point['min_negative_score']):.3f}",
        confidence_key: f"{float(point['min_confidence']):.2f}",
        "calibration_source": str(calibration.get("run", "")),
    }


def export_onnx(
    model: ServedModel, out: Path, extra_meta: Mapping[str, str], size: int = INPUT_SIZE
) -> None:
    """Export ``model`` to ``out`` (atomically) with the production contract and metadata."""
    model.eval()
    dummy = torch.zeros(1, size, size, 3, dtype=torch.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo (needs onnxscript).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(tmp),
            input_names=["image"],
            output_names=["probs", "logits"],
            dynamic_axes={"image": {0: "N"}, "probs": {0: "N"}, "logits": {0: "N"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load(str(tmp))
    meta = {
        "labels": json.dumps(list(LABELS)),
        "project_name": PROJECT_NAME,
        "deploy_version": DEPLOY_VERSION,
        "input_size": str(size),
        **extra_meta,
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value
    proto.doc_string = "allscreen ALL reference classifier (see model/MODEL_CARD.md)"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, out)
