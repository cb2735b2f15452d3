"""A Studio-like model whose labels are not the ALL ones, screened through the real CLI.

Real Redis, SQLite and PostgreSQL (each test runs on both), a real worker holding
`tests/support/studio_like.eim` (labels artifact, normal, abnormal; scores from the mean
colour of the image; no screening policy unless given one), and solid-colour images whose
scores, and so calls, are known in advance.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import Engine, select

from allscreen.defaults import REPO_ROOT
from allscreen.policy import ScreeningPolicy
from allscreen.schema import Result, Verdict
from allscreen.settings import Settings
from tests.support.cli import allscreen
from tests.support.studio_like_eim import LABELS, THRESHOLDS_VARIABLE
from tests.support.workers import workers

STUDIO = REPO_ROOT / "tests" / "support" / "studio_like.eim"
RUN = "studio"
#: image → RGB colour. Scores: red artifact 0.98, green normal 0.98, blue abnormal 0.98,
#: pale green normal 0.50 on top (a third each would be 0.33).
COLOURS = {
    "red.png": (230, 30, 30),
    "green.png": (30, 230, 30),
    "blue.png": (30, 30, 230),
    "pale_green.png": (110, 140, 110),
}
TOP_LABELS = {
    "red.png": "artifact",
    "green.png": "normal",
    "blue.png": "abnormal",
    "pale_green.png": "normal",
}
NORMAL_AT_0_6 = ("--negative-label", "normal", "--min-negative-score", "0.6")
CALLS_AT_0_6 = {
    "red.png": "positive",  # top label not a negative one
    "green.png": "negative",
    "blue.png": "positive",
    "pale_green.png": "review",  # top label normal, but P(normal) below 0.6
}


def _archive(root: Path) -> Path:
    root.mkdir()
    for name, (r, g, b) in COLOURS.items():
        img = np.empty((224, 224, 3), dtype=np.uint8)
        img[...] = (b, g, r)  # OpenCV writes BGR
        assert cv2.imwrite(str(root / name), img)
    return root


def _run(*args: str, settings: Settings) -> str:
    done = allscreen(*args, settings=settings)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _refused(*args: str, settings: Settings) -> str:
    """Run a command that must fail with exit 2 and one line on stderr; return the line."""
    done = allscreen(*args, settings=settings)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def _screen(
    settings: Settings, tmp_path: Path, *submit: str, env: dict[str, str] | None = None
) -> None:
    """Submit the colour archive as run `studio` to a worker holding the Studio-like model."""
    archive = _archive(tmp_path / "archive")
    extra = {"ALLSCREEN_MODEL": str(STUDIO), **(env or {})}
    with workers(settings, tmp_path, "dev", extra_env=extra):
        _run("submit", str(archive), "--run", RUN, *submit, "--wait", settings=settings)


def _status(settings: Settings) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_run("status", RUN, "--json", settings=settings))
    return data


def _export(settings: Settings) -> dict[str, dict[str, str]]:
    rows = csv.DictReader(io.StringIO(_run("export", RUN, "--csv", "-", settings=settings)))
    return {r["path"]: r for r in rows}


def _results(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(Result.__table__)))


def test_the_workers_start_up_checks_accept_the_studio_like_model(
    settings: Settings, engine: Engine
) -> None:
    done = allscreen("worker", "--check", settings=settings, env={"ALLSCREEN_MODEL": str(STUDIO)})
    assert done.returncode == 0, done.stderr
    assert "labels artifact, normal, abnormal" in done.stderr


def test_a_studio_model_without_an_operating_point_gives_labels_only_and_no_review_queue(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    _screen(settings, tmp_path)

    assert _status(settings)["screening"]["policy"] is None
    rows = _export(settings)
    assert {p: r["label"] for p, r in rows.items()} == TOP_LABELS
    for row in rows.values():
        assert row["status"] == "done"
        assert all(row[f"score_{x}"] for x in LABELS)
        assert [row[c] for c in ("call", "final_call", "policy")] == ["", "", ""]

    line = _refused("review", RUN, settings=settings)
    assert "has no screening policy" in line and "policy set" in line


def test_a_policy_on_the_models_own_labels_set_after_the_run_gives_calls_without_reclassifying(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    _screen(settings, tmp_path)
    before = _results(engine)

    line = _refused(
        "policy", "set", RUN, "--negative-label", "Benign", "--min-negative-score", "0.6",
        settings=settings,
    )  # fmt: skip
    assert "Benign" in line and all(x in line for x in LABELS)
    assert _status(settings)["screening"]["policy"] is None

    _run("policy", "set", RUN, *NORMAL_AT_0_6, settings=settings)
    assert _results(engine) == before

    screening = _status(settings)["screening"]
    assert screening["policy"]["negative_labels"] == ["normal"]
    assert screening["policy"]["min_negative_score"] == 0.6
    assert screening["images"] == {"positive": 2, "review": 1, "negative": 1}
    rows = _export(settings)
    assert {p: r["call"] for p, r in rows.items()} == CALLS_AT_0_6
    policy = ScreeningPolicy(("normal",), 0.6)
    for row in rows.values():  # the SQL calls follow the policy's own rule
        rule = policy.call(float(row["score_normal"]), row["label"], float(row["confidence"]))
        assert row["call"] == row["final_call"] == rule
        assert "P(normal) ≥ 0.600" in row["policy"]

    queue = _run("review", RUN, settings=settings).splitlines()
    flagged = sorted(line.split()[-1] for line in queue if line.endswith(".png"))
    assert flagged == ["blue.png", "pale_green.png", "red.png"]


def test_a_verdict_must_name_a_label_of_the_runs_model(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    _screen(settings, tmp_path, *NORMAL_AT_0_6)

    line = _refused(
        "review", RUN, "--set", "pale_green.png", "Benign", "--by", "dr-a", settings=settings
    )
    assert "'Benign' is not a label" in line and all(x in line for x in LABELS)
    _run("review", RUN, "--set", "pale_green.png", "abnormal", "--by", "dr-a", settings=settings)

    with engine.connect() as conn:
        verdicts = conn.execute(
            select(Verdict.label, Verdict.reviewer, Verdict.model_label, Verdict.model_call)
        ).all()
    assert [tuple(v) for v in verdicts] == [("abnormal", "dr-a", "normal", "review")]
    screening = _status(settings)["screening"]
    assert screening["images"] == {"positive": 3, "review": 0, "negative": 1}
    assert screening["reviewed"] == 1
    row = _export(settings)["pale_green.png"]
    assert (row["call"], row["verdict"], row["final_call"]) == ("review", "abnormal", "positive")


def test_the_operating_point_a_studio_model_reports_in_hello_is_the_runs_default_policy(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    screening_entry = {
        "id": 0,
        "type": "screening",
        "negative_labels": ["normal"],
        "min_negative_score": 0.4,
        "min_confidence": 0.0,
        "min_positive_images": 1,
    }
    anomaly_entry = {"id": 1, "type": "anomaly_gmm", "min_anomaly_score": 0.5}  # not a policy
    thresholds = json.dumps([anomaly_entry, screening_entry])
    _screen(settings, tmp_path, env={THRESHOLDS_VARIABLE: thresholds})

    screening = _status(settings)["screening"]
    policy = screening["policy"]
    assert "hello" in policy["source"] and policy["policy_id"] is None
    assert (policy["negative_labels"], policy["min_negative_score"]) == (["normal"], 0.4)
    assert screening["images"] == {"positive": 2, "review": 0, "negative": 2}
    calls = {p: r["call"] for p, r in _export(settings).items()}
    assert calls == {**CALLS_AT_0_6, "pale_green.png": "negative"}  # P(normal) 0.50 ≥ 0.4
