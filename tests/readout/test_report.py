"""`allscreen report`: one offline HTML page, checked by its figures and in a real browser."""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from allscreen.db import ensure_schema, make_engine
from allscreen.schema import Run
from allscreen.settings import Settings
from producer.submit import submit, watch
from readout.report import render_report
from readout.report_data import FailureLine, ReportData
from readout.report_figures import Spread, Throughput
from tests.support.browser import dump_dom, pixel_spread, screenshot
from tests.support.cli import allscreen
from tests.support.images import DATA, split_rows
from tests.support.workers import workers

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FIGURES = ("class-counts", "confusion-matrix", "latency-per-device", "throughput-over-time")
REFERENCE = re.compile(
    r"""(?:\b(?:src|href)\s*=\s*["']?|url\(\s*["']?|@import\s+["']?)([^"')\s>]*)"""
)


def external_references(page: str) -> list[str]:
    """Every src, href, url() or @import target that is not inside the page itself."""
    return [ref for ref in REFERENCE.findall(page) if not ref.startswith(("#", "data:"))]


def _data(pairs: dict[tuple[str | None, str | None], int], failed: int = 0) -> ReportData:
    """A run's figures as the report reads them: done results per (truth, label) pair."""
    done = sum(pairs.values())
    status = {
        "total": done + failed,
        "done": done,
        "failed": failed,
        "pending": 0,
        "accuracy": None,
        "seconds": 5.0,
        "images_per_second": (done + failed) / 5,
        "devices": [
            {"device": "nano-a", "done": done, "failed": failed, "p50_ms": 3.0, "p95_ms": 6.0}
        ]
        if done or failed
        else [],
    }
    truth: dict[str, int] = {}
    for (t, _), n in pairs.items():
        if t is not None:
            truth[t] = truth.get(t, 0) + n
    error = "cannot decode image <broken & odd>"
    return ReportData(
        Run(id=1, name="r<1>", created_at=T0),
        status,
        pairs=pairs,
        truth=truth,
        reasons=[(error, failed)] if failed else [],
        failures_listed=[FailureLine(f"smear-{i}.jpg", "nano-a", error) for i in range(failed)],
        inference={"nano-a": Spread(2.0, 2.5, 3.0, 4.0, 6.0, done)},
        waited={"nano-a": Spread(0.1, 0.2, 0.3, 0.5, 0.9, done)},
        throughput=Throughput(0.25, {"nano-a": [1, 2, 0, 1]}),
        models=["m"],
    )


def test_precision_and_recall_follow_the_confusion_matrix() -> None:
    data = _data(
        {
            ("Pre", "Pre"): 2,
            ("Pre", "Early"): 1,
            ("Early", "Early"): 1,
            ("Benign", "Pre"): 1,
            (None, "Pro"): 1,  # no ground truth: counted as predicted, not judged
        },
        failed=1,
    )
    assert data.labels() == ["Benign", "Early", "Pre"]
    assert data.confusion() == [[0, 0, 1], [0, 1, 0], [0, 1, 2]]
    assert data.judged == 5
    scores = {c.label: c for c in data.class_scores()}
    assert scores["Pre"].precision == 2 / 3 and scores["Pre"].recall == 2 / 3
    assert scores["Early"].precision == 1 / 2 and scores["Early"].recall == 1.0
    assert scores["Benign"].precision is None and scores["Benign"].recall == 0.0
    assert data.predicted_counts()["Pro"] == 1
    assert data.failure_reasons() == [("cannot decode image <broken & odd>", 1)]


def test_the_page_escapes_names_and_errors_and_references_nothing_outside_itself() -> None:
    page = render_report(_data({("Pre", "Pre"): 1}, failed=1))
    assert "<h1>Run r&lt;1&gt;</h1>" in page
    assert "cannot decode image &lt;broken &amp; odd&gt;" in page
    assert external_references(page) == []
    assert "http://" not in page and "https://" not in page and "<script" not in page
    for fig in FIGURES:
        assert f'<figure id="{fig}"><svg' in page


def test_a_run_without_results_ground_truth_or_policy_still_renders() -> None:
    page = render_report(_data({}))
    assert "No image classified yet" in page and "No ground truth" in page
    assert 'id="screening">No screening policy' in page  # and no Cases or Review section
    assert 'id="cases"' not in page and 'id="review"' not in page


@pytest.fixture
def test_split(tmp_path: Path) -> Path:
    """The shared set's `test` split as an archive of label folders (symlinks, no copies)."""
    if not (DATA / "split.csv").exists():
        pytest.skip(f"the shared ALL image set is not at {DATA}; the report test needs it")
    root = tmp_path / "test-split"
    for path, label in split_rows("test"):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / path.name).symlink_to(path)
    return root


def test_the_report_of_the_test_split_shows_accuracy_and_latency_in_a_browser(
    broker_url: str, sqlite_url: str, test_split: Path, tmp_path: Path
) -> None:
    settings = Settings(
        broker_url=broker_url,
        database_url=sqlite_url,
        queue=f"allscreen-t-{uuid.uuid4().hex[:8]}",
        batch_size=16,
        visibility_timeout=30,
    )
    ensure_schema(make_engine(sqlite_url), create=True)
    with workers(settings, tmp_path, "nano-a", "nano-b"):
        submit([test_split], settings, run_name="test-split", labels="folder", err=io.StringIO())
        _, counts, _ = watch("test-split", settings, err=io.StringIO())
    assert counts.finished and counts.done > 400

    html = tmp_path / "report.html"
    done = allscreen("report", "test-split", "--html", str(html), settings=settings)
    assert done.returncode == 0, done.stderr
    page = html.read_text(encoding="utf-8")
    assert external_references(page) == [] and "http" not in page
    assert 'id="class-scores"' in page and "Accuracy: " in page

    url = html.as_uri()
    dom = dump_dom(url, offline=True)
    for fig in FIGURES:
        assert re.search(rf'<figure id="{fig}"><svg[^>]*>.*?<path', dom, re.S), fig
    for device in ("nano-a", "nano-b"):
        assert f"<td>{device}</td>" in dom
    png = screenshot(url, tmp_path / "report.png", size=(1280, 3000), offline=True)
    assert pixel_spread(png) > 20


def test_report_of_an_unknown_run_is_one_line(sqlite_url: str, tmp_path: Path) -> None:
    ensure_schema(make_engine(sqlite_url), create=True)
    done = allscreen(
        "report",
        "nope",
        "--html",
        str(tmp_path / "r.html"),
        env={"ALLSCREEN_DATABASE_URL": sqlite_url},
    )
    assert done.returncode == 5 and done.stderr.strip() == "allscreen: error: no run named 'nope'"
    assert not (tmp_path / "r.html").exists()
