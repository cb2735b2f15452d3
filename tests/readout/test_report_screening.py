"""The report's Screening, Cases and Review sections, from a real run to a real browser."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import Engine, and_, select

from allscreen.policy import CALL_NEGATIVE, CALL_POSITIVE, CALL_REVIEW, ScreeningPolicy
from allscreen.policy_store import InForce
from allscreen.schema import STATUS_DONE, Case, Image, Result
from allscreen.settings import Settings
from readout.calls import CallCounts
from readout.cases import CALL_PENDING, CASE_CALL_ORDER, CaseRow
from readout.report_screening import (
    MAX_CASES_LISTED,
    MAX_THUMBNAILS,
    ScreeningData,
    cases_section,
    review_section,
)
from readout.review import FlaggedImage
from readout.thumbnails import THUMBNAIL_PX, thumbnail_uri
from tests.readout.test_report import external_references
from tests.support.browser import dump_dom, pixel_spread, screenshot
from tests.support.cli import allscreen
from tests.support.images import archive_of
from tests.support.workers import workers

POLICY = ScreeningPolicy(("Benign",), 0.9, 0.7)
POLICY_FLAGS = (
    *("--negative-label", "Benign", "--min-negative-score", "0.9"),
    *("--min-confidence", "0.7"),
)
THUMB = re.compile(r'<img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"')
CASE_ROW = re.compile(r'<tr><td>([^<]*)</td><td class="call-(\w+)">')


def _decoded_size(b64: str) -> tuple[int, int]:
    pixels = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None
    return int(pixels.shape[1]), int(pixels.shape[0])


def test_a_thumbnail_is_a_small_jpeg_and_an_unreadable_file_gives_none(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for shape in ((200, 300), (600, 900), (40, 30)):  # small, large (decoded reduced), tiny
        wide = tmp_path / f"{shape[0]}.png"
        assert cv2.imwrite(str(wide), rng.integers(0, 255, (*shape, 3), dtype=np.uint8))
        uri = thumbnail_uri(bytes(wide))
        assert uri is not None and uri.startswith("data:image/jpeg;base64,")
        scale = min(1.0, THUMBNAIL_PX / max(shape))
        want = (round(shape[1] * scale), round(shape[0] * scale))
        assert _decoded_size(uri.split(",", 1)[1]) == want, shape
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    assert thumbnail_uri(bytes(tmp_path / "junk.jpg")) is None
    assert thumbnail_uri(bytes(tmp_path / "missing.jpg")) is None


def test_long_case_and_review_lists_are_capped_and_say_how_many_more() -> None:
    cases = [
        CaseRow(i, f"case-{i:04}", None, 2, 1, 0, 1, 0, 0, 1, 0, 0.5, 1)
        for i in range(MAX_CASES_LISTED + 3)
    ]
    flagged = [
        FlaggedImage(i, None, f"{i}.jpg", "0" * 64, "review", "review", "Pre", 0.6, 0.7, None, None)
        for i in range(MAX_THUMBNAILS + 5)
    ]
    data = ScreeningData(
        "big", InForce(POLICY, "test", None), CallCounts(0, 0, 0, 0, 0, 0, 0), cases, flagged
    )
    page = cases_section(data) + review_section(data)
    assert len(CASE_ROW.findall(page)) == MAX_CASES_LISTED
    assert "… and 3 more cases" in page and "… and 5 more flagged images" in page
    assert page.count("not readable here") == MAX_THUMBNAILS
    assert "No reviewer verdict yet" in page


def _expected(
    engine: Engine, verdicts: dict[str, str]
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Case calls in queue order, and each flagged image's label, computed here in Python."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Image.path, Case.name, Result.status, Result.label, Result.confidence)
            .add_columns(Result.scores)
            .join(Case, Case.id == Image.case_id)
            .outerjoin(Result, and_(Result.image_id == Image.id, Result.run_id == Image.run_id))
        ).all()
    per_case: dict[str, list[str]] = {}
    scores: dict[str, float] = {}
    flagged = {}
    for path, case, status, label, confidence, raw in rows:
        call = CALL_PENDING if status is None else CALL_REVIEW
        if status == STATUS_DONE:
            p = json.loads(raw)
            call = POLICY.call(p["Benign"], label, confidence)
            scores[case] = max(scores.get(case, 0.0), 1.0 - p["Benign"])
            if call != CALL_NEGATIVE:
                flagged[path] = label
        if path in verdicts:
            call = POLICY.call_of_label(verdicts[path])
        per_case.setdefault(case, []).append(call)
    calls = {}
    for case, got in per_case.items():
        if got.count(CALL_POSITIVE) >= POLICY.min_positive_images:
            calls[case] = CALL_POSITIVE
        elif CALL_POSITIVE in got or CALL_REVIEW in got:
            calls[case] = CALL_REVIEW
        elif CALL_PENDING in got:
            calls[case] = CALL_PENDING
        else:
            calls[case] = CALL_NEGATIVE
    order = sorted(calls, key=lambda c: (CASE_CALL_ORDER.index(calls[c]), -scores[c], c))
    return [(c, calls[c]) for c in order], flagged


def test_the_report_of_a_screened_run_shows_cases_and_review_thumbnails_in_a_browser(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    archive = archive_of(tmp_path / "archive", per_class=3)  # the label folder names the case
    with workers(settings, tmp_path, "nano-a"):
        done = allscreen(
            "submit", str(archive), "--run", "screened", "--labels", "folder",
            "--case-level", "1", *POLICY_FLAGS, "--wait",
            settings=settings, timeout=300,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr

    _, flagged = _expected(engine, {})
    assert len(flagged) >= 2, flagged
    # A verdict against the model's label on the first flagged image changes its call.
    first, last = sorted(flagged)[0], sorted(flagged)[-1]
    said = "Pre" if flagged[first] == "Benign" else "Benign"
    verdict = allscreen(
        "review", "screened", "--set", first, said, "--by", "alice", settings=settings
    )
    assert verdict.returncode == 0, verdict.stderr
    cases, _ = _expected(engine, {first: said})
    assert len(cases) == 4, cases  # one case per label folder
    (archive / last).unlink()  # this one cannot be read here any more

    html = tmp_path / "report.html"
    done = allscreen("report", "screened", "--html", str(html), settings=settings)
    assert done.returncode == 0, done.stderr
    page = html.read_text(encoding="utf-8")
    assert external_references(page) == [] and "http" not in page and "<script" not in page
    assert POLICY.describe() in page and "command-line flags" in page
    assert CASE_ROW.findall(page) == cases
    assert f"Review: {len(flagged)} flagged images" in page
    thumbs = THUMB.findall(page)
    assert len(thumbs) == len(flagged) - 1 and page.count("not readable here") == 1
    assert all(max(_decoded_size(t)) <= THUMBNAIL_PX for t in thumbs)
    assert "label on 0 of 1 (0.0%); the call changed on 1." in page

    url = html.as_uri()
    dom = dump_dom(url, offline=True)
    for section in ("screening", "cases", "review"):
        assert f'<section id="{section}">' in dom, section
    assert len(re.findall(r'<img src="data:image/jpeg;base64,', dom)) == len(thumbs)
    png = screenshot(url, tmp_path / "report.png", size=(1280, 2400), offline=True)
    assert pixel_spread(png) > 20
