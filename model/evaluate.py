"""Evaluate an ONNX ALL classifier on one split of the fixed data split.

Runs the model with onnxruntime on exactly the production preprocessing (see
:func:`preprocess`) at the input size the model declares in its ONNX metadata
(``input_size``, the size the ``.eim`` server reports in ``hello`` and the worker resizes
to), and reports accuracy, per-class precision and recall, the confusion matrix and the
per-image network latency (median over the split, batch 1, one thread).

Usage (from the repository root)::

    .venv/bin/python -m model.evaluate [--model model/all_cnn96.onnx] [--split test] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from model.calibration import ece
from model.eim_protocol import ModelInfo, ScreeningThreshold
from model.metrics import LABELS, confusion_matrix, metrics_from_confusion
from model.screening import outcome

INPUT_SIZE = 96
"""Default side of the square input when none is given (the Edge Impulse device's size).

A trained model carries its own size in its ONNX metadata (``input_size``); everything
that feeds a model reads it from there (:func:`model_input_size`)."""

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO_ROOT / "model" / "all_cnn96.onnx"


def default_data_dir() -> Path:
    """Return the default data directory: ``../shared/data/all`` relative to the repo root.

    The repository may be a git worktree somewhere else than ``/work/main``, so the
    candidates are tried in order and the first that holds a ``split.csv`` wins.
    """
    candidates = [
        REPO_ROOT.parent / "shared" / "data" / "all",
        Path.cwd().parent / "shared" / "data" / "all",
        Path("/work/shared/data/all"),
    ]
    for cand in candidates:
        if (cand / "split.csv").is_file():
            return cand
    return candidates[0]


def load_split(data_dir: str | Path, split: str) -> list[tuple[Path, str]]:
    """Return ``(image path, label)`` pairs of one split, in ``split.csv`` order.

    Args:
        data_dir: directory holding ``split.csv`` and the class folders.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (every row).

    Raises:
        FileNotFoundError: if ``split.csv`` is missing.
        ValueError: if the split is empty or a row has an unknown label.
    """
    root = Path(data_dir)
    rows: list[tuple[Path, str]] = []
    with (root / "split.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if split != "all" and row["split"] != split:
                continue
            label = row["label"]
            if label not in LABELS:
                raise ValueError(f"unknown label {label!r} in split.csv")
            rows.append((root / row["file"], label))
    if not rows:
        raise ValueError(f"split {split!r} is empty in {root / 'split.csv'}")
    return rows


def preprocess_uint8(
    path: str | Path, width: int = INPUT_SIZE, height: int | None = None
) -> npt.NDArray[np.uint8]:
    """Read an image and squash-resize it to ``width`` x ``height`` RGB, as uint8 HWC.

    ``height`` defaults to ``width``. This is the production path up to (not including)
    the float conversion.
    """
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read image {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    size = (width, width if height is None else height)
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small, dtype=np.uint8)


def preprocess(
    path: str | Path, width: int = INPUT_SIZE, height: int | None = None
) -> npt.NDArray[np.float32]:
    """Return the network input for one image: float32 (height, width, 3), RGB, HWC, 0..1.

    Exactly: ``cv2.imread`` (BGR) -> ``cvtColor`` BGR2RGB -> ``resize`` to width x height
    with ``INTER_AREA`` (Edge Impulse "squash") -> ``astype(float32) / 255.0``. The worker
    computes the same pixels from the size the server reports in ``hello``.
    """
    small = preprocess_uint8(path, width, height)
    return small.astype(np.float32) / 255.0


def make_session(model_path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """Create a CPU onnxruntime session with ``threads`` intra-op threads and 1 inter-op."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
    )


def model_input_size(sess: ort.InferenceSession) -> tuple[int, int]:
    """Return the ``(width, height)`` a model takes, as the ``.eim`` server reports it.

    Read from the ONNX metadata ``input_size`` exactly as :mod:`model.eim_server` reads it
    for ``hello`` (so evaluation resizes to the size the worker resizes to); a model without
    that metadata falls back to the static H and W of its NHWC input.

    Raises:
        ValueError: if neither the metadata nor the input shape gives a size.
    """
    meta: dict[str, str] = sess.get_modelmeta().custom_metadata_map
    if "input_size" in meta:
        info = ModelInfo.from_metadata(
            {"labels": json.dumps(list(LABELS)), "project_name": "", "deploy_version": "0", **meta}
        )
        return info.width, info.height
    shape = sess.get_inputs()[0].shape
    if len(shape) == 4 and isinstance(shape[1], int) and isinstance(shape[2], int):
        return int(shape[2]), int(shape[1])
    raise ValueError(f"model declares no input size (metadata or static input shape {shape})")


def model_screening(sess: ort.InferenceSession) -> ScreeningThreshold | None:
    """The screening operating point the model carries in its metadata (None if none)."""
    meta: dict[str, str] = sess.get_modelmeta().custom_metadata_map
    return ScreeningThreshold.from_metadata(meta, LABELS)


def evaluate(
    model_path: str | Path,
    data_dir: str | Path,
    split: str = "test",
    *,
    threads: int = 1,
    warmup: int = 20,
) -> dict[str, Any]:
    """Evaluate ``model_path`` on ``split`` one image at a time; return a metrics dict.

    Latency is the wall time of ``session.run`` alone (preprocessing excluded) for batch
    size 1, on a session with ``threads`` intra-op threads; the median and 90th percentile
    over the split are reported, after ``warmup`` untimed runs. As a same-run baseline for
    a noisy machine, the median time of :func:`preprocess` (JPEG decode, colour conversion,
    resize; call ``cv2.setNumThreads(1)`` first for a one-core figure) is reported too, with
    the ratio network / preprocessing. Images are resized to the model's own input size
    (:func:`model_input_size`). Also reported: the expected calibration error (15 bins,
    top label) and, when the model carries a screening operating point, what it decides
    (:func:`model.screening.outcome`).
    """
    items = load_split(data_dir, split)
    sess = make_session(model_path, threads=threads)
    input_name = sess.get_inputs()[0].name
    outputs = [o.name for o in sess.get_outputs()]
    output = "probs" if "probs" in outputs else outputs[0]
    width, height = model_input_size(sess)
    inputs: list[npt.NDArray[np.float32]] = []
    pre_ms: list[float] = []
    for path, _ in items:
        t0 = time.perf_counter()
        inputs.append(preprocess(path, width, height)[None, ...])
        pre_ms.append((time.perf_counter() - t0) * 1000.0)
    for k in range(min(warmup, len(inputs))):
        sess.run([output], {input_name: inputs[k]})
    y_true: list[int] = []
    y_pred: list[int] = []
    times_ms: list[float] = []
    all_probs: list[npt.NDArray[np.float32]] = []
    errors: list[dict[str, Any]] = []
    for (path, label), x in zip(items, inputs, strict=True):
        t0 = time.perf_counter()
        out = sess.run([output], {input_name: x})
        times_ms.append((time.perf_counter() - t0) * 1000.0)
        probs = np.asarray(out[0], dtype=np.float32)[0]
        all_probs.append(probs)
        pred = int(np.argmax(probs))
        truth = LABELS.index(label)
        y_true.append(truth)
        y_pred.append(pred)
        if pred != truth:
            errors.append(
                {
                    "file": str(path),
                    "label": label,
                    "predicted": LABELS[pred],
                    "p_pred": float(probs[pred]),
                }
            )
    result = metrics_from_confusion(confusion_matrix(y_true, y_pred))
    p, y = np.stack(all_probs), np.asarray(y_true, dtype=np.int64)
    result["ece"] = ece(p, y)
    screening = model_screening(sess)
    if screening is not None:
        result["screening"] = outcome(p, y, screening.min_negative_score, screening.min_confidence)
    result.update(
        {
            "model": str(model_path),
            "split": split,
            "input_size": [width, height],
            "latency_ms_median": float(np.median(times_ms)),
            "latency_ms_p90": float(np.percentile(times_ms, 90)),
            "latency_threads": threads,
            "preprocess_ms_median": float(np.median(pre_ms)),
            "latency_to_preprocess_ratio": float(np.median(times_ms) / np.median(pre_ms)),
            "errors": errors,
        }
    )
    return result


def format_report(result: dict[str, Any]) -> str:
    """Render a metrics dict from :func:`evaluate` as a human-readable text report."""
    lines = [
        f"model {result['model']}  split {result['split']}  n={result['n']}"
        + ("  input {}x{}".format(*result["input_size"]) if "input_size" in result else ""),
        f"accuracy {result['accuracy'] * 100:.2f}% ({result['correct']}/{result['n']})",
        f"{'class':<8} {'support':>7} {'precision':>9} {'recall':>7}",
    ]
    for name, pc in result["per_class"].items():
        lines.append(
            f"{name:<8} {pc['support']:>7d} {pc['precision'] * 100:>8.2f}% "
            f"{pc['recall'] * 100:>6.2f}%"
        )
    lines.append("confusion matrix (rows true, cols predicted): " + " ".join(LABELS))
    for name, row in zip(LABELS, result["confusion_matrix"], strict=True):
        lines.append(f"{name:<8} " + " ".join(f"{v:>6d}" for v in row))
    if "latency_ms_median" in result:
        lines.append(
            f"network latency batch 1, {result['latency_threads']} thread(s): "
            f"median {result['latency_ms_median']:.3f} ms, p90 {result['latency_ms_p90']:.3f} ms"
        )
        lines.append(
            f"baseline preprocess (decode+resize) median {result['preprocess_ms_median']:.3f} ms;"
            f" network/preprocess ratio {result['latency_to_preprocess_ratio']:.2f}"
        )
    if "ece" in result:
        lines.append(f"expected calibration error (15 bins, top label) {result['ece'] * 100:.2f}%")
    if "screening" in result:
        op = result["screening"]
        lines.append(
            f"screening t={op['t']} r={op['r']}: ALL called negative {op['all_negative']} of "
            f"{op['n_all']}; Benign positive {op['benign_positive']}, Benign review "
            f"{op['benign_review']} of {op['n_benign']}; review {op['reviewed']} of {op['n']} "
            f"({op['review_share'] * 100:.2f}%)"
        )
    for err in result.get("errors", []):
        lines.append(
            f"  error: {err['file']} {err['label']} -> {err['predicted']} (p={err['p_pred']:.3f})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="ONNX file")
    parser.add_argument("--data", type=Path, default=None, help="data dir with split.csv")
    parser.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    data_dir = args.data if args.data is not None else default_data_dir()
    cv2.setNumThreads(1)
    result = evaluate(args.model, data_dir, args.split, threads=args.threads)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
