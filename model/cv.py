"""Grouped k-fold cross-validation of a training recipe over ``train`` + ``val``.

``val`` alone (328 images) is saturated: nearly every recipe gets the same two or three
images wrong on it, so it cannot choose between recipes. This protocol pools ``train`` and
``val`` (2,286 images under split v2), splits them into ``K`` folds by the ``split.csv``
``group`` column (near duplicates stay together; groups are dealt per class, so every fold
has about the same class mix), trains the recipe ``K`` times on ``K - 1`` folds and
predicts the held-out fold. Out-of-fold predictions of every pooled image form one
confusion matrix, so recipes are compared on tens of errors instead of two; they are also
what :mod:`model.calibrate` fits the temperature and the operating point on. ``test`` is
never loaded.

No split is looked at during a fold's training: every fold trains for the recipe's full
``--epochs`` and keeps the last epoch (the cosine schedule ends at LR 0), unlike the final
protocol, which picks the epoch on ``val``. Fold ``k`` uses the seed ``seed * 1000 + k``.

Usage (from the repository root; every training option of :mod:`model.train` applies, and
its defaults are the shipped recipe)::

    .venv/bin/python -m model.cv --folds 4 --name v2-H --threads 1 [--stain 0.05] ...

The out-of-fold figures are printed and written as JSON to the git-ignored
``model/.train-cache/cv-<name>.json``, and the out-of-fold probabilities to
``cv-<name>.npz`` (:class:`model.oof.OutOfFold`). ``--combine RUN [RUN ...]`` scores the
ensemble of finished runs (the mean of their out-of-fold softmax) without training::

    .venv/bin/python -m model.cv --name B0+B1 --combine B0 B1
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from model.augment import to_tensor
from model.data import CACHE_DIR, Arrays, channel_stats, load_arrays, resolve_data_dir
from model.metrics import LABELS, confusion_matrix, metrics_from_confusion, nll
from model.oof import OutOfFold
from model.train import Config, config_from_args, parse_args, predict_probs, start_run, train_net

POOLED: tuple[str, ...] = ("train", "val")


def pooled_rows(data_dir: Path) -> list[dict[str, str]]:
    """The ``split.csv`` rows of ``train`` then ``val``, each in file order.

    This is the order of ``load_arrays(...)["train"]`` followed by ``["val"]``.
    """
    with (data_dir / "split.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r for split in POOLED for r in rows if r["split"] == split]


def assign_folds(labels: Sequence[str], groups: Sequence[str], k: int, seed: int) -> list[int]:
    """Deal whole groups to ``k`` folds, class by class, keeping folds balanced.

    Within each class the groups are shuffled (seeded), then each goes to the fold that
    holds the fewest images of that class so far (lowest index on ties). A group never
    spans two folds. Returns the fold of every image.
    """
    rng = np.random.default_rng(seed)
    fold_of_group: dict[str, int] = {}
    for label in sorted(set(labels)):
        sizes: dict[str, int] = {}
        for lab, grp in zip(labels, groups, strict=True):
            if lab == label:
                sizes[grp] = sizes.get(grp, 0) + 1
        names = sorted(sizes)
        order = rng.permutation(len(names))
        filled = [0] * k
        for j in order:
            name = names[int(j)]
            if name in fold_of_group:
                raise ValueError(f"group {name!r} holds more than one class")
            fold = min(range(k), key=lambda f: (filled[f], f))
            fold_of_group[name] = fold
            filled[fold] += sizes[name]
    return [fold_of_group[g] for g in groups]


def run_cv(cfg: Config, data_dir: Path, k: int, fold_seed: int = 0) -> OutOfFold:
    """Train ``cfg`` on every ``k - 1`` folds and predict the held-out fold."""
    data = load_arrays(data_dir, cfg.size)
    x_all = np.concatenate([data[s].x for s in POOLED])
    y_all = np.concatenate([data[s].y for s in POOLED])
    rows = pooled_rows(data_dir)
    if len(rows) != len(y_all):
        raise ValueError("split.csv rows do not match the cached arrays")
    labels = [r["label"] for r in rows]
    if [LABELS.index(lab) for lab in labels] != y_all.tolist():
        raise ValueError("split.csv labels do not match the cached arrays")
    folds = np.array(assign_folds(labels, [r["group"] for r in rows], k, fold_seed))
    oof = np.zeros((len(y_all), len(LABELS)), dtype=np.float32)
    for fold in range(k):
        t0 = time.perf_counter()
        tr, te = folds != fold, folds == fold
        mean, std = channel_stats(x_all[tr])
        fold_data = {"train": Arrays(x=x_all[tr], y=y_all[tr])}
        net, _ = train_net(cfg, cfg.seed * 1000 + fold, fold_data, mean, std, select=False)
        oof[te] = predict_probs(net, to_tensor(x_all[te])).numpy()
        errors = int((oof[te].argmax(1) != y_all[te]).sum())
        seconds = time.perf_counter() - t0
        print(f"fold {fold}: {errors} errors of {int(te.sum())} ({seconds:.0f} s)", flush=True)
    return OutOfFold(probs=oof, labels=y_all, folds=folds)


def score(run: OutOfFold, rows: Sequence[dict[str, str]]) -> dict[str, Any]:
    """Pooled out-of-fold metrics of ``run``; ``rows`` are the images' ``split.csv`` rows."""
    pred = run.probs.argmax(1)
    cm = confusion_matrix(run.labels.tolist(), pred.tolist())
    result = metrics_from_confusion(cm)
    result.update(
        {
            "errors_total": int((pred != run.labels).sum()),
            "benign_to_early": int(cm[LABELS.index("Benign"), LABELS.index("Early")]),
            "early_to_benign": int(cm[LABELS.index("Early"), LABELS.index("Benign")]),
            "oof_nll": nll(run.probs, run.labels),
            "folds": run.fold_errors(),
            "wrong": [
                {"file": rows[int(i)]["file"], "predicted": LABELS[int(pred[i])]}
                for i in np.flatnonzero(pred != run.labels)
            ],
        }
    )
    return result


def combine(names: Sequence[str]) -> OutOfFold:
    """The ensemble of finished CV runs ``names``: their mean out-of-fold softmax.

    Every run must have used the same folds (``--folds`` and ``--fold-seed``).
    """
    runs = [OutOfFold.load(name) for name in names]
    first = runs[0]
    for run in runs[1:]:
        if not (
            np.array_equal(run.labels, first.labels) and np.array_equal(run.folds, first.folds)
        ):
            raise ValueError("the runs do not share the same images and folds")
    probs = np.mean([run.probs for run in runs], axis=0).astype(np.float32)
    return OutOfFold(probs=probs, labels=first.labels, folds=first.folds)


def format_cv(name: str, result: dict[str, Any]) -> str:
    """One human-readable block of pooled out-of-fold figures."""
    recall = " / ".join(f"{pc['recall'] * 100:.2f}" for pc in result["per_class"].values())
    lines = [
        f"CV {name}: {result['errors_total']} errors of {result['n']} "
        f"(accuracy {result['accuracy'] * 100:.2f}%), Benign->Early {result['benign_to_early']}, "
        f"Early->Benign {result['early_to_benign']}, OOF NLL {result['oof_nll']:.4f}",
        f"  recall Benign / Early / Pre / Pro: {recall}",
        "  per fold errors: " + ", ".join(str(f["errors"]) for f in result["folds"]),
        "  confusion (rows true): "
        + "; ".join(" ".join(str(v) for v in row) for row in result["confusion_matrix"]),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description="Grouped k-fold CV of a training recipe.")
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--fold-seed", type=int, default=0, help="seed of the group-to-fold deal")
    p.add_argument("--name", required=True, help="candidate name (JSON file name)")
    p.add_argument(
        "--combine",
        nargs="+",
        metavar="RUN",
        help="score the mean softmax of these finished runs instead of training",
    )
    own, rest = p.parse_known_args(argv)
    args = parse_args(rest)
    if own.combine:
        result = score(combine(own.combine), pooled_rows(resolve_data_dir(args.data)))
        result["combined"] = own.combine
        (CACHE_DIR / f"cv-{own.name}.json").write_text(json.dumps(result, indent=1))
        print(format_cv(own.name, result), flush=True)
        return 0
    cfg = config_from_args(args)
    t_start = time.perf_counter()
    data_dir = start_run(cfg, args.data)
    print(f"CV {own.name}: {own.folds} folds, config {cfg}", flush=True)
    run = run_cv(cfg, data_dir, own.folds, own.fold_seed)
    result = score(run, pooled_rows(data_dir))
    result["config"] = asdict(cfg)
    result["seconds"] = time.perf_counter() - t_start
    print(format_cv(own.name, result), flush=True)
    print(f"total wall time {result['seconds']:.1f}s")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    (CACHE_DIR / f"cv-{own.name}.json").write_text(json.dumps(result, indent=1))
    run.save(own.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
