"""The CLI, through the CLI: submit, status, export, resume, and clear one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlalchemy import Engine

from allscreen.settings import Settings
from tests.support.cli import allscreen
from tests.support.workers import workers


def test_submit_wait_then_status_and_export_report_every_image(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    with workers(settings, tmp_path, "cli-dev"):
        sub = allscreen(
            "submit",
            str(archive),
            "--run",
            "cli",
            "--labels",
            "folder",
            "--wait",
            settings=settings,
        )
    assert sub.returncode == 0, sub.stderr
    assert sub.stdout.splitlines()[0] == "cli"
    assert "images/s" in sub.stdout and "img/s" in sub.stderr

    st = allscreen("status", "cli", "--json", settings=settings)
    data = json.loads(st.stdout)
    assert {"run", "total", "done", "failed", "pending"} <= set(data)
    assert data["run"] == "cli" and data["pending"] == 0 and data["failed"] == 0
    assert data["done"] == data["total"] > 0
    assert [d["device"] for d in data["devices"]] == ["cli-dev"]
    assert data["devices"][0]["p50_ms"] is not None

    out = tmp_path / "cli.csv"
    ex = allscreen("export", "cli", "--csv", str(out), settings=settings)
    assert ex.returncode == 0, ex.stderr
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == data["total"]
    assert list(rows[0]) == [
        "path",
        "sha256",
        "case",
        "status",
        "label",
        "confidence",
        "score_Benign",
        "score_Early",
        "score_Pre",
        "score_Pro",
        "ground_truth",
        "device",
        "model",
        "latency_ms",
        "error",
        "call",
        "verdict",
        "reviewer",
        "final_call",
        "policy",
    ]
    for row in rows:
        assert row["status"] == "done" and row["device"] == "cli-dev"
        assert row["ground_truth"] in {"Benign", "Early", "Pre", "Pro"}
        assert (
            abs(sum(float(row[f"score_{k}"]) for k in ("Benign", "Early", "Pre", "Pro")) - 1) < 1e-3
        )


def test_resume_re_enqueues_images_whose_batches_the_broker_lost(
    settings: Settings, archive: Path, tmp_path: Path, engine: Engine
) -> None:
    import redis

    sub = allscreen("submit", str(archive), "--run", "lost", settings=settings)
    assert sub.returncode == 0, sub.stderr
    assert settings.broker_url is not None
    redis.Redis.from_url(settings.broker_url).flushdb()  # the broker loses its queue
    with workers(settings, tmp_path, "rescuer"):
        res = allscreen("resume", "lost", "--wait", settings=settings)
    assert res.returncode == 0, res.stderr
    assert "re-enqueued" in res.stderr
    st = json.loads(allscreen("status", "lost", "--json", settings=settings).stdout)
    assert st["pending"] == 0 and st["done"] == st["total"] > 0


def test_status_of_an_unknown_run_is_one_line_and_exit_code_5(
    settings: Settings, engine: Engine
) -> None:
    r = allscreen("status", "nope", settings=settings)
    assert r.returncode == 5
    assert r.stderr.strip() == "allscreen: error: no run named 'nope'"


def test_an_unreachable_database_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    r = allscreen(
        "status", "x", env={"ALLSCREEN_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    )
    assert r.returncode == 3
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("allscreen: error: cannot reach the database")
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_misspelled_setting_is_refused(tmp_path: Path) -> None:
    r = allscreen("status", "x", env={"ALLSCREEN_DATABSE_URL": "sqlite://"})
    assert r.returncode == 2
    assert (
        "Traceback" not in r.stderr
        and "invalid setting: unknown setting(s) ALLSCREEN_DATABSE_URL" in r.stderr
    )


def test_submitting_a_missing_folder_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    r = allscreen("submit", str(tmp_path / "absent"), settings=settings)
    assert r.returncode == 2
    assert r.stderr.strip() == f"allscreen: error: no such file or folder: {tmp_path / 'absent'}"


def test_worker_check_reports_each_check_and_fails_on_a_missing_model(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    ok = allscreen("worker", "--check", settings=settings)
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr.count("ok    ") == 5  # model file, libraries, start; broker; database
    bad = allscreen(
        "worker",
        "--check",
        settings=settings,
        env={"ALLSCREEN_MODEL": str(tmp_path / "missing.eim")},
    )
    assert bad.returncode == 1  # `--check` answers yes or no (tests/cli/test_worker_check.py)
    assert "FAIL  model file not found" in bad.stderr and "Traceback" not in bad.stderr
