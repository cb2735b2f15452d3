"""`report RUN_A --compare RUN_B`: two real runs of overlapping archives, side by side."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, and_, insert, select

from allscreen.policy import ScreeningPolicy
from allscreen.policy_store import InForce
from allscreen.schema import STATUS_DONE, Image, Result, Run
from allscreen.settings import Settings
from readout.compare import MAX_CHANGED_LISTED, Changed, Comparison, Side, render_comparison
from tests.readout.test_report import external_references
from tests.support.browser import dump_dom
from tests.support.cli import allscreen
from tests.support.images import archive_of
from tests.support.workers import workers

POLICY_A = ScreeningPolicy(("Benign",), 0.5)
POLICY_B = ScreeningPolicy(("Early",), 0.5)
CARD = re.compile(r"<b>([^<]*)</b><span>([^<]*)</span>")
CHANGED_ROW = re.compile(r"<tr><td>([^<]*)</td><td>[^<]*</td><td>")


def _flags(policy: ScreeningPolicy) -> tuple[str, ...]:
    label = policy.negative_labels[0]
    return ("--negative-label", label, "--min-negative-score", str(policy.min_negative_score))


Said = tuple[str, str | None, dict[str, float], float | None]  #: path, label, scores, confidence


def _said(engine: Engine, run: str) -> dict[str, Said]:
    """sha256 → (path, label, scores, confidence) of the run's classified images."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Image.sha256, Image.path, Result.label, Result.scores, Result.confidence)
            .join(Run, Run.id == Image.run_id)
            .join(Result, and_(Result.image_id == Image.id, Result.run_id == Image.run_id))
            .where(Run.name == run, Result.status == STATUS_DONE)
        ).all()
    return {sha: (path, label, json.loads(s or "{}"), conf) for sha, path, label, s, conf in rows}


def _call(policy: ScreeningPolicy, said: Said) -> str:
    _, label, scores, confidence = said
    assert label is not None and confidence is not None
    negative = sum(scores[x] for x in policy.negative_labels)
    return policy.call(negative, label, confidence)


def _cards(page: str) -> dict[str, str]:
    return {name: value for value, name in CARD.findall(page)}


def _compare(settings: Settings, tmp_path: Path, name: str) -> str:
    html = tmp_path / name
    done = allscreen("report", "a", "--compare", "b", "--html", str(html), settings=settings)
    assert done.returncode == 0, done.stderr
    page = html.read_text(encoding="utf-8")
    assert external_references(page) == [] and "http" not in page and "<script" not in page
    return page


def test_two_runs_of_overlapping_archives_compare_by_content_under_their_own_policies(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    # A: 3 images per class; B: 4 per class of the same set, without Benign, at other paths.
    root_a = archive_of(tmp_path / "a", per_class=3)
    root_b = archive_of(tmp_path / "b", per_class=4)
    shutil.rmtree(root_b / "Benign")
    with workers(settings, tmp_path, "nano-a"):
        for run, root, policy in (("a", root_a, POLICY_A), ("b", root_b, POLICY_B)):
            done = allscreen(
                "submit", str(root), "--run", run, "--labels", "folder", *_flags(policy),
                "--wait", settings=settings, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr

    a, b = _said(engine, "a"), _said(engine, "b")
    common = a.keys() & b.keys()
    assert len(a) == 12 and len(b) == 12 and len(common) == 9
    same_label = sum(a[s][1] == b[s][1] for s in common)
    changed = {a[s][0] for s in common if _call(POLICY_A, a[s]) != _call(POLICY_B, b[s])}
    assert changed, "an Early image is positive under A's policy and negative under B's"

    page = _compare(settings, tmp_path, "compare.html")
    cards = _cards(page)
    assert cards["images in both runs"] == "9"
    assert cards["only in A (a)"] == "3" and cards["only in B (b)"] == "3"
    assert cards["in both, classified by both"] == "9"
    assert cards["label agreement"] == f"{same_label / 9:.1%}"
    assert cards["call agreement"] == f"{(9 - len(changed)) / 9:.1%}"
    assert f"Changed call: {len(changed)} images" in page
    table = page.split('<table id="changed-images">', 1)[1].split("</table>", 1)[0]
    assert set(CHANGED_ROW.findall(table)) == changed
    assert POLICY_A.describe() in page and POLICY_B.describe() in page
    assert '<table id="class-scores-compare">' in page and '<table id="call-matrix">' in page
    dom = dump_dom((tmp_path / "compare.html").as_uri(), offline=True)
    assert '<section id="changed">' in dom and '<div class="cards" id="agreement">' in dom

    # Calls are read under the policy in force: with B's policy made A's, no call differs.
    done = allscreen("policy", "set", "b", *_flags(POLICY_A), settings=settings)
    assert done.returncode == 0, done.stderr
    page = _compare(settings, tmp_path, "same-policy.html")
    assert _cards(page)["call agreement"] == "100.0%" and "No call changed." in page


def _side(name: str, images: int, policy: ScreeningPolicy | None) -> Side:
    in_force = InForce(policy, "test", None) if policy else None
    return Side(Run(id=1, name=name), in_force, images, ["m v1 (abc, 3 images)"])


def test_without_policies_labels_are_compared_and_long_lists_are_capped() -> None:
    groups = {
        (True, True, "Pre", "Pre", None, None, "Pre"): 5,
        (True, True, "Pre", "Pro", None, None, "Pre"): MAX_CHANGED_LISTED + 2,
        (True, False, "Pre", None, None, None, "Pre"): 1,
    }
    changed = [
        Changed(f"x{i}.jpg", "Pre", ("Pre", 0.9, None, None), ("Pro", 0.8, None, None))
        for i in range(MAX_CHANGED_LISTED)
    ]
    c = Comparison(_side("a<1>", 600, None), _side("b", 510, None), Counter(groups), changed)
    page = render_comparison(c)
    cards = _cards(page)
    assert cards["images in both runs"] == str(MAX_CHANGED_LISTED + 8)
    assert cards["only in A (a&lt;1&gt;)"] == str(600 - MAX_CHANGED_LISTED - 8)
    assert cards["label agreement"] == f"{5 / (MAX_CHANGED_LISTED + 7):.1%}"
    assert "call agreement" not in cards and "Calls are not compared" in page
    assert f"Changed label: {MAX_CHANGED_LISTED + 2} images" in page
    assert "… and 2 more changed images" in page
    n = MAX_CHANGED_LISTED + 7  # true Pre images both classified
    pre = "".join(
        f"<td class=n>{x}</td>" for x in (n, "100.0%", "100.0%", "100.0%", f"{5 / n:.1%}")
    )
    assert f"<tr><td>Pre</td>{pre}</tr>" in page  # precision A, B; recall A, B


def test_comparing_with_an_unknown_run_is_one_line(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Run).values(name="a", created_at=datetime.now(UTC)))
    out = tmp_path / "compare.html"
    done = allscreen("report", "a", "--compare", "nope", "--html", str(out), settings=settings)
    assert done.returncode == 5 and done.stderr.strip() == "allscreen: error: no run named 'nope'"
    assert not out.exists()
