"""The review page in a real headless Chromium, on runs made by real workers and the real CLI.

Real Redis, SQLite and PostgreSQL (each database test runs on both), `allscreen serve` in a
subprocess, Playwright driving the system's Chromium. Synthetic images only, so the tests run
(and the screenshots can be published) without the shared data set.
The policy is strict (Benign only at P ≥ 0.95, review below 0.9), so the model flags most
synthetic images; what it flagged is read from `allscreen export` before the page is opened.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

from playwright.sync_api import Page
from sqlalchemy import Engine, select

from allscreen.demo import make_synthetic_images
from allscreen.schema import Case, Image, ModelRecord, Run, Verdict
from allscreen.settings import Settings
from tests.reviewweb.server import browser, review_server
from tests.support.browser import pixel_spread
from tests.support.cli import allscreen
from tests.support.workers import workers

#: Where to copy the screenshots for docs/ (unset in CI: they stay in the test's folder).
SCREENSHOT_DIR = os.environ.get("REVIEW_SCREENSHOT_DIR")


def _archive(root: Path) -> Path:
    """ROOT/<case>/<slide>/*.jpg: three cases of synthetic smears."""
    for k, (case, n) in enumerate({"C1": 4, "C2": 3, "C3": 2}.items()):
        make_synthetic_images(root / case / "s1", n, seed=10 + k)
    return root


def _export(settings: Settings) -> dict[str, dict[str, str]]:
    done = allscreen("export", "r", "--csv", "-", settings=settings)
    assert done.returncode == 0, done.stderr
    return {row["path"]: row for row in csv.DictReader(io.StringIO(done.stdout))}


def _verdicts(engine: Engine, case: str) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Image.path, Verdict.label, Verdict.reviewer)
            .join(Image, Image.id == Verdict.image_id)
            .join(Case, Case.id == Image.case_id)
            .where(Case.name == case)
            .order_by(Verdict.id)
        ).all()
    return [(p, label, who) for p, label, who in rows]


def _press(page: Page, key: str) -> None:
    with page.expect_navigation():
        page.keyboard.press(key)


def _shot(page: Page, tmp: Path, name: str) -> None:
    png = tmp / name
    page.screenshot(path=str(png), full_page=False)
    assert pixel_spread(png) > 10, f"{name} looks blank"
    if SCREENSHOT_DIR:
        shutil.copy(png, Path(SCREENSHOT_DIR) / name)


def test_a_reviewer_reviews_a_case_by_keyboard_and_a_second_reviewer_supersedes_it(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    archive = _archive(tmp_path / "archive")
    flat = make_synthetic_images(tmp_path / "flat", 3, seed=30)
    policy = (
        "--negative-label",
        "Benign",
        "--min-negative-score",
        "0.95",
        "--min-confidence",
        "0.9",
    )
    with workers(settings, tmp_path, "dev"):
        for args in (
            (str(archive), "--run", "r", "--case-level", "1"),
            (str(flat), "--run", "flat"),
        ):
            sub = allscreen("submit", *args, *policy, "--wait", settings=settings)
            assert sub.returncode == 0, sub.stderr
    with engine.connect() as conn:
        run_id = conn.scalar(select(Run.id).where(Run.name == "r"))
        labels = json.loads(conn.scalar(select(ModelRecord.labels)) or "[]")
    assert labels[:2] == ["Benign", "Early"], labels
    flagged_in = Counter(
        r["case"] for r in _export(settings).values() if r["call"] in ("positive", "review")
    )
    queue = len(flagged_in)
    assert queue >= 2, f"the model flagged too few synthetic cases to review: {flagged_in}"

    with review_server(settings, tmp_path / "serve.log") as base, browser() as chrome:
        page = chrome.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "/")
        page.click(f"a[href='/runs/{run_id}']")
        assert f"Reviewed 0 of {queue} cases" in page.inner_text("#progress")
        assert page.locator("table.worklist tbody tr").count() == queue
        worklist_url = page.url

        # The first case of the queue; the reviewer gives their name once.
        page.click("table.worklist tbody tr:first-child a")
        case_url = page.url
        case_name = page.inner_text("h1").split()[1]
        page.fill("#name", "alice")
        with page.expect_navigation():
            page.press("#name", "Enter")
        assert page.url == case_url
        assert page.inner_text("#reviewer") == "alice"
        flagged = page.locator(".card.flagged").count()
        assert flagged == flagged_in[case_name]

        # `2` is the model's second label, for every flagged image of the case.
        _press(page, "2")
        texts = page.locator(".card.flagged .verdict").all_inner_texts()
        assert texts == ["verdict: Early by alice"] * flagged
        rows = [r for r in _export(settings).values() if r["case"] == case_name and r["verdict"]]
        assert len(rows) == flagged
        assert {(r["verdict"], r["reviewer"], r["final_call"]) for r in rows} == {
            ("Early", "alice", "positive")
        }
        assert {x[1:] for x in _verdicts(engine, case_name)} == {("Early", "alice")}
        status = allscreen("status", "r", "--json", settings=settings)
        assert json.loads(status.stdout)["screening"]["reviewed"] == flagged, status.stderr

        # Kept across a reload; the case now counts as reviewed.
        page.reload()
        assert page.locator(".card.flagged .verdict").all_inner_texts() == texts
        assert f"Reviewed 1 of {queue} cases" in page.inner_text("#progress")
        _shot(page, tmp_path, "review-case.png")

        # A click on an image shows it whole (served by id, decoded by the browser); Esc closes.
        first = page.locator(".card.flagged").first
        first_id = first.get_attribute("id")
        assert first_id is not None
        full = page.locator(f"#full-{first_id.removeprefix('card-')} img")
        page.click(f"#{first_id} .thumb")
        full.wait_for(state="visible")
        assert full.evaluate("img => img.complete && img.naturalWidth") > 0
        page.keyboard.press("Escape")
        full.wait_for(state="hidden")

        # A key on a focused image gives that image alone a verdict.
        first.focus()
        _press(page, "u")
        assert page.inner_text(f"#{first_id} .verdict") == "verdict: unsure by alice"
        assert page.locator(".card.flagged .verdict").all_inner_texts().count(texts[0]) == (
            flagged - 1
        )

        # `n` goes to the next case still to review; the worklist shows the first one done.
        _press(page, "n")
        assert re.search(r"/cases/\d+$", page.url) and page.url != case_url
        page.goto(worklist_url)
        assert page.locator("table.worklist tr.done").count() == 1
        page.select_option("select[name=reviewed]", "no")
        with page.expect_navigation():
            page.click(".filters button")
        assert page.locator("table.worklist tbody tr.todo").count() == queue - 1
        assert page.locator("table.worklist tr.done").count() == 0
        page.goto(worklist_url)
        _shot(page, tmp_path, "review-worklist.png")

        # A second reviewer (another browser, no cookies) supersedes alice's verdicts.
        other = chrome.new_page()
        other.goto(case_url)
        other.fill("#name", "bob")
        with other.expect_navigation():
            other.press("#name", "Enter")
        _press(other, "1")
        assert (
            other.locator(".card.flagged .verdict").all_inner_texts()
            == ["verdict: Benign by bob"] * flagged
        )
        rows = [r for r in _export(settings).values() if r["case"] == case_name and r["verdict"]]
        assert len(rows) == flagged
        assert {(r["verdict"], r["reviewer"], r["final_call"]) for r in rows} == {
            ("Benign", "bob", "negative")  # a reviewer's Benign is a negative call
        }
        kept = _verdicts(engine, case_name)
        assert [who for _, _, who in kept] == ["alice"] * (flagged + 1) + ["bob"] * flagged

        # Without cases, the worklist is the flagged images, with the same controls.
        with engine.connect() as conn:
            flat_id = conn.scalar(select(Run.id).where(Run.name == "flat"))
        other.goto(f"{base}/runs/{flat_id}")
        assert "Reviewed 0 of" in other.inner_text("#progress")
        card = other.locator(".card.flagged").first
        card_id = card.get_attribute("id")
        card.focus()
        _press(other, "u")
        assert other.inner_text(f"#{card_id} .verdict") == "verdict: unsure by bob"
        assert "Reviewed 1 of" in other.inner_text("#progress")
