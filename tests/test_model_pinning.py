"""One model per run: two real workers with different models, one run pinned to one of them."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from allscreen.db import make_engine
from allscreen.defaults import DEFAULT_MODEL
from allscreen.refusals import refusals_of_run
from allscreen.results import ResultRow, upsert_results
from allscreen.runs import counts, find_run
from allscreen.schema import STATUS_DONE, Image, Result
from allscreen.settings import Settings
from producer.submit import submit
from tests.support.cli import allscreen
from tests.support.workers import workers


def variant_model(folder: Path) -> Path:
    """A copy of the reference launcher with one more comment line: same network, new sha256."""
    folder.mkdir()
    (folder / "eim_server.py").symlink_to(DEFAULT_MODEL.parent / "eim_server.py")
    text = DEFAULT_MODEL.read_text()
    first, rest = text.split("\n", 1)
    model = folder / "variant-b.eim"
    model.write_text(f"{first}\n# variant B: a second build of the reference model\n{rest}")
    model.chmod(0o755)
    return model


def sha256_of(path: Path) -> str:
    """The sha256 of a file, as workers compute it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until `predicate` holds, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def test_a_pinned_run_is_classified_only_by_the_device_holding_the_pinned_model(
    fleet: Settings, archive: Path, tmp_path: Path
) -> None:
    model_b = variant_model(tmp_path / "model-b")
    sha_a, sha_b = sha256_of(DEFAULT_MODEL), sha256_of(model_b)
    assert sha_a != sha_b
    engine = make_engine(fleet.database_url)

    def refused() -> int:
        run = find_run(engine, "pinned")
        return sum(r.batches for r in refusals_of_run(engine, run.id))

    with workers(fleet, tmp_path, "dev-b", extra_env={"ALLSCREEN_MODEL": str(model_b)}) as (b,):
        done = submit([archive], fleet, run_name="pinned", pin=sha_a, err=io.StringIO())
        wait_for(lambda: refused() >= 2, 60, "dev-b to refuse the pinned run's batches")
        run_id = find_run(engine, "pinned").id
        with workers(fleet, tmp_path, "dev-a"):
            # Polled here rather than with `watch`, whose recovery of lost batches could send
            # a batch twice and so blur the delivery counts this test checks.
            wait_for(lambda: counts(engine, run_id).finished, 120, "dev-a to finish the run")
        log_b = b.text()

    total = counts(engine, run_id)
    assert total.done == total.total == done.registered.new > 0
    with engine.connect() as conn:
        rows = conn.execute(select(Result.device, Result.model_sha256, Result.status)).all()
        deliveries = conn.scalars(select(Image.deliveries)).all()
    assert len(rows) == total.total
    assert set(rows) == {("dev-a", sha_a, STATUS_DONE)}
    assert set(deliveries) == {1}  # dev-b's refusals never counted as deliveries
    assert "refused batch" in log_b and f"holds {sha_b[:12]}" in log_b

    st = allscreen("status", "pinned", "--json", settings=fleet)
    data = json.loads(st.stdout)
    assert data["model_sha256"] == sha_a and data["mixed_models"] is False
    assert [m["sha256"] for m in data["models"]] == [sha_a]
    assert [(r["device"], r["model_sha256"]) for r in data["refusals"]] == [("dev-b", sha_b)]
    assert data["refused_batches"] >= 2
    text = allscreen("status", "pinned", settings=fleet).stdout
    assert f"pinned to model {sha_a[:12]}" in text
    assert f"WARNING: device dev-b holds model {sha_b[:12]}" in text
    engine.dispose()


def _row(run_id: int, image_id: int, device: str, digit: str, version: str) -> ResultRow:
    """A done result from model `digit * 64`."""
    return ResultRow(
        run_id,
        image_id,
        STATUS_DONE,
        device,
        datetime.now(UTC),
        label="Pre",
        model_sha256=digit * 64,
        model_name="allscreen ALL",
        model_version=version,
    )


def test_status_warns_when_an_unpinned_run_mixes_results_from_two_models(
    fleet: Settings, tmp_path: Path
) -> None:
    archive = tmp_path / "two"
    archive.mkdir()
    for i in range(2):
        (archive / f"img-{i}.png").write_bytes(f"not really an image {i}".encode())
    submit([archive], fleet, run_name="mixed", err=io.StringIO())
    engine = make_engine(fleet.database_url)
    run = find_run(engine, "mixed")
    with engine.connect() as conn:
        ids = conn.scalars(select(Image.id).where(Image.run_id == run.id).order_by(Image.id)).all()
    upsert_results(
        engine,
        [
            _row(run.id, ids[0], "dev-a", "a", "3"),
            _row(run.id, ids[1], "dev-b", "b", "4"),
        ],
    )
    engine.dispose()
    data = json.loads(allscreen("status", "mixed", "--json", settings=fleet).stdout)
    assert data["mixed_models"] is True and data["model_sha256"] is None
    assert {m["sha256"] for m in data["models"]} == {"a" * 64, "b" * 64}
    text = allscreen("status", "mixed", settings=fleet).stdout
    assert "WARNING: results come from 2 different models" in text
    assert "Pin one with `submit --model-sha256 SHA`" in text


def test_submit_refuses_a_pin_that_is_not_a_sha256(fleet: Settings, archive: Path) -> None:
    r = allscreen("submit", str(archive), "--model-sha256", "abc123", settings=fleet)
    assert r.returncode == 2
    assert r.stderr.startswith("allscreen: error: --model-sha256 needs the 64-hex-digit sha256")
