"""Cases, screening calls, a policy changed after the run, and verdicts, through the real CLI.

Real Redis, SQLite and PostgreSQL (each test runs on both), a real worker with the reference
model, and real images from the shared set (ground truth from the file names).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from allscreen.policy import ScreeningPolicy
from allscreen.schema import Case, Image, PolicyRecord, Result, Verdict
from allscreen.settings import Settings
from tests.conftest import need
from tests.support.cli import allscreen
from tests.support.images import DATA, split_rows
from tests.support.workers import workers


def _smears(label: str, n: int, skip: int = 0) -> list[Path]:
    if not (DATA / "split.csv").exists():
        need(f"the shared image set is absent ({DATA}): these tests need real smears")
    return [p for p, lab in split_rows("test") if lab == label][skip : skip + n]


def _case_archive(root: Path) -> Path:
    """ROOT/<accession>/<slide>/*.jpg: P1 all benign, P2 benign but one Early, P3 all Early."""
    layout = {
        "P1/s1": _smears("Benign", 3),
        "P2/s1": _smears("Benign", 2, skip=3),
        "P2/s2": _smears("Early", 1),
        "P3/s1": _smears("Early", 3, skip=1),
    }
    for folder, files in layout.items():
        (root / folder).mkdir(parents=True)
        for f in files:
            shutil.copy(f, root / folder / f.name)
    return root


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _ok(*args: str, settings: Settings) -> str:
    done = allscreen(*args, settings=settings)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_case_level_cases_get_calls_a_later_policy_and_superseding_verdicts(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    archive = _case_archive(tmp_path / "archive")
    with workers(settings, tmp_path, "dev"):
        sub = allscreen(
            "submit", str(archive), "--run", "r", "--labels", "filename", "--case-level", "1",
            "--negative-label", "Benign", "--min-negative-score", "0.5", "--wait",
            settings=settings,
        )  # fmt: skip
    assert sub.returncode == 0, sub.stderr

    # Cases are named by the folder one level below the root, and stored in SQL.
    with engine.connect() as conn:
        names = sorted(conn.scalars(select(Case.name)))
        per_case = dict(
            conn.execute(
                select(Case.name, func.count(Image.id)).join(Image).group_by(Case.name)
            ).all()
        )
    assert names == ["P1", "P2", "P3"]
    assert per_case == {"P1": 3, "P2": 3, "P3": 3}

    # The three case calls under the policy given at submission: one Early image is enough.
    cases = {
        r["case"]: r for r in _csv(_ok("export", "r", "--cases", "--csv", "-", settings=settings))
    }
    assert cases["P1"]["call"] == "negative"
    assert cases["P2"]["call"] == "positive" and cases["P2"]["positive"] == "1"
    assert cases["P3"]["call"] == "positive" and cases["P3"]["positive"] == "3"

    # Calls computed in SQL are the policy's rule applied to each stored score.
    policy = ScreeningPolicy(("Benign",), 0.5)
    rows = _csv(_ok("export", "r", "--csv", "-", settings=settings))
    for row in rows:
        expected = policy.call(float(row["score_Benign"]), row["label"], float(row["confidence"]))
        assert row["call"] == expected, row
        assert row["case"] == row["path"].split("/")[0]

    # A stricter policy set after the run changes the calls, not a single stored result.
    with engine.connect() as conn:
        before = conn.execute(select(Result).order_by(Result.id)).all()
    benign_conf = sorted(float(r["confidence"]) for r in rows if r["label"] == "Benign")
    strict = benign_conf[len(benign_conf) // 2] + 1e-6  # half the Benign calls fall below it
    _ok(
        "policy", "set", "r", "--negative-label", "Benign", "--min-negative-score", "0.5",
        "--min-confidence", f"{strict:.6f}", settings=settings,
    )  # fmt: skip
    with engine.connect() as conn:
        assert conn.execute(select(Result).order_by(Result.id)).all() == before
        assert conn.scalar(select(func.count()).select_from(PolicyRecord)) == 2
    status = json.loads(_ok("status", "r", "--json", settings=settings))["screening"]
    assert status["policy"]["min_confidence"] == pytest.approx(strict, abs=1e-6)
    assert status["policy"]["source"] == "command-line flags"
    assert status["images"]["review"] >= 1
    assert sum(status["images"].values()) == 9
    assert status["cases"]["review"] + status["cases"]["positive"] >= 2
    assert "screening policy: negative = P(Benign)" in _ok("status", "r", settings=settings)

    # The review queue: positive cases first, by their highest malignant score.
    queue = _ok("review", "r", settings=settings).splitlines()
    assert "cases need a person" in queue[1]
    listed = [line.split()[:2] for line in queue if line.split()[:1] in (["P1"], ["P2"], ["P3"])]
    assert {"P2", "P3"} <= {name for name, _ in listed}
    order = [["positive", "review"].index(call) for _, call in listed]
    assert order == sorted(order)

    # Verdicts: a later one supersedes an earlier; both stay; results are never touched.
    early = next(r for r in rows if r["case"] == "P2" and r["ground_truth"] == "Early")
    _ok("review", "r", "--set", early["path"], "Benign", "--by", "alice", "--note", "hm",
        settings=settings)  # fmt: skip
    first = {r["path"]: r for r in _csv(_ok("export", "r", "--csv", "-", settings=settings))}
    assert first[early["path"]]["verdict"] == "Benign"
    assert first[early["path"]]["final_call"] == "negative"
    _ok("review", "r", "--set", early["sha256"], "Early", "--by", "bob", settings=settings)
    second = {r["path"]: r for r in _csv(_ok("export", "r", "--csv", "-", settings=settings))}
    assert second[early["path"]]["verdict"] == "Early"
    assert second[early["path"]]["reviewer"] == "bob"
    assert second[early["path"]]["final_call"] == "positive"
    with engine.connect() as conn:
        kept = conn.execute(
            select(Verdict.label, Verdict.reviewer, Verdict.note, Verdict.model_label)
            .order_by(Verdict.id)
        ).all()  # fmt: skip
        assert conn.execute(select(Result).order_by(Result.id)).all() == before
    assert [tuple(k) for k in kept] == [
        ("Benign", "alice", "hm", early["label"]),
        ("Early", "bob", None, early["label"]),
    ]

    # The worklist round trip: fill in the `verdict` column, import it back.
    worklist = _csv(_ok("review", "r", "--csv", "-", settings=settings))
    assert worklist and {r["call"] for r in worklist} <= {"positive", "review"}
    filled = tmp_path / "verdicts.csv"
    with filled.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(worklist[0]))
        w.writeheader()
        fresh = next(r["path"] for r in worklist if not r["current_verdict"])
        for r in worklist:
            w.writerow({**r, "verdict": "unsure" if r["path"] == fresh else ""})
    imp = allscreen("review", "r", "--import", str(filled), "--by", "carol", settings=settings)
    assert imp.returncode == 0, imp.stderr
    assert "recorded 1 verdict" in imp.stderr
    agreed = json.loads(_ok("status", "r", "--json", settings=settings))["screening"]
    assert agreed["reviewed"] == 2 and agreed["reviewer_decided"] >= 1

    # Bad verdicts are one line each, and record nothing.
    for bad, words in [
        (("--set", "nope.jpg", "Early"), "no image with path or sha256"),
        (("--set", early["path"], "Blast"), "not a label"),
    ]:
        done = allscreen("review", "r", *bad, settings=settings)
        assert done.returncode == 2 and words in done.stderr
        assert "Traceback" not in done.stderr
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Verdict)) == 3


def test_a_case_manifest_names_cases_and_a_conflicting_one_is_refused(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    archive = tmp_path / "flat"
    archive.mkdir()
    files = _smears("Benign", 2) + _smears("Pro", 2)
    for f in files:
        shutil.copy(f, archive / f.name)
    manifest = tmp_path / "cases.csv"
    manifest.write_text(
        "path,case,patient\n"
        + "".join(f"{f.name},{'C1' if i < 3 else 'C2'},pat-{i < 3}\n" for i, f in enumerate(files))
    )
    args = ["submit", str(archive), "--run", "m", "--case-manifest", str(manifest)]
    first = allscreen(*args, settings=settings)
    assert first.returncode == 0, first.stderr
    again = allscreen(*args, settings=settings)  # the same mapping: nothing changes
    assert again.returncode == 0, again.stderr
    assert "registered 0 new images" in again.stderr
    with engine.connect() as conn:
        stored = conn.execute(
            select(Image.path, Case.name, Case.patient).join(Case).order_by(Image.path)
        ).all()
    assert [(p, c, pat) for p, c, pat in stored] == [
        (f.name, "C1" if i < 3 else "C2", f"pat-{i < 3}")
        for i, f in sorted(enumerate(files), key=lambda x: x[1].name)
    ]

    moved = tmp_path / "moved.csv"  # one image now said to be in another case
    moved.write_text(
        manifest.read_text().replace(
            f"{files[0].name},C1,pat-True", f"{files[0].name},C2,pat-False"
        )
    )
    refused = allscreen("submit", str(archive), "--run", "m", "--case-manifest", str(moved),
                        settings=settings)  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert f"{files[0].name} is already in case C1" in refused.stderr
    assert "Traceback" not in refused.stderr

    partial = tmp_path / "partial.csv"  # images the manifest does not name: said, not dropped
    partial.write_text("path,case\n" + f"{files[0].name},C1\n")
    warned = allscreen("submit", str(archive), "--run", "m", "--case-manifest", str(partial),
                       settings=settings)  # fmt: skip
    assert warned.returncode == 0 and "3 images are not in the case manifest" in warned.stderr

    two = tmp_path / "two.csv"  # one case, two patients: refused before anything is stored
    two.write_text(f"path,case,patient\n{files[0].name},C9,x\n{files[1].name},C9,y\n")
    clash = allscreen("submit", str(archive), "--run", "m", "--case-manifest", str(two),
                      settings=settings)  # fmt: skip
    assert clash.returncode == 2 and "case C9 is given two patients" in clash.stderr

    broken = tmp_path / "broken.csv"
    broken.write_text("file,patient\nx.jpg,1\n")
    bad = allscreen("submit", str(archive), "--run", "m", "--case-manifest", str(broken),
                    settings=settings)  # fmt: skip
    assert bad.returncode == 2 and "needs the columns path,case" in bad.stderr


def test_a_policy_fitted_on_known_truth_states_its_interval_and_applies_to_another_run(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    archive = _case_archive(tmp_path / "archive")
    with workers(settings, tmp_path, "dev"):
        for run in ("a", "b"):
            done = allscreen("submit", str(archive), "--run", run, "--labels", "filename",
                             "--wait", settings=settings)  # fmt: skip
            assert done.returncode == 0, done.stderr
    # With no policy set, the operating point the reference model reports in its hello is
    # the run's policy (read from the `models` record the worker wrote).
    default = json.loads(_ok("status", "a", "--json", settings=settings))["screening"]["policy"]
    assert default["policy_id"] is None and "hello" in default["source"]
    assert default["negative_labels"] == ["Benign"]
    assert "cases need a person" not in _ok("review", "a", settings=settings)  # a run of images

    saved = tmp_path / "fitted.json"
    fit = allscreen("policy", "fit", "a", "--sensitivity", "0.9", "--negative-label", "Benign",
                    "--save", str(saved), settings=settings)  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert "exact 95% interval" in fit.stdout
    assert "too small to support sensitivity" in fit.stdout  # 4 positive images cannot show 90%
    body = json.loads(saved.read_text())
    assert body["negative_labels"] == ["Benign"] and 0.5 <= body["min_negative_score"] <= 1
    assert "0 of 4 positive images called negative" in fit.stdout

    _ok("policy", "set", "b", "--policy", str(saved), settings=settings)
    shown = _ok("policy", "show", "b", settings=settings)
    assert f"file {saved}" in shown
    calls = _csv(_ok("export", "b", "--csv", "-", settings=settings))
    assert all(r["call"] in {"positive", "review", "negative"} for r in calls)
    assert all(r["call"] != "negative" for r in calls if r["ground_truth"] != "Benign")
