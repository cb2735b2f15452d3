"""PostgreSQL roles from `allscreen db roles`: a worker under the device role finishes a run,
and the same role can neither change the schema, delete results, nor read what it does not
need. Roles and the database are throwaway ones with unique names, dropped afterwards."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from allscreen.db import make_engine
from allscreen.models_seen import record_model
from allscreen.refusals import record_refusal
from allscreen.results import ResultRow, upsert_results
from allscreen.settings import Settings
from producer.submit import submit, watch
from tests.conftest import PG_URL, need
from tests.support.cli import allscreen
from tests.support.runs import outcomes
from tests.support.workers import workers
from worker.store import begin_batch


@dataclass(frozen=True, slots=True)
class Roles:
    """A throwaway database with its owner and device roles made by `allscreen db roles`."""

    admin: str
    owner: str
    device: str

    def url(self, role: str) -> str:
        """The database URL as `role` (the server trusts local connections)."""
        return self.admin.replace("postgres@", f"{role}@", 1)


@pytest.fixture(scope="module")
def roles() -> Iterator[Roles]:
    """Create a database, run `allscreen db roles` on it; drop it and both roles after."""
    tag = uuid.uuid4().hex[:8]
    name, owner, device = f"allscreen_roles_{tag}", f"owner_{tag}", f"device_{tag}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        need(f"no PostgreSQL at {PG_URL} ({exc}); `scripts/dev services` starts one")
        raise
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    made = Roles(url, owner, device)
    try:
        r = allscreen(
            "db", "roles", "--owner", owner, "--device", device, env={"ALLSCREEN_DATABASE_URL": url}
        )
        assert r.returncode == 0, r.stderr
        assert f"roles ready: owner {owner}, device {device}" in r.stderr
        yield made
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{device}"')
            admin.execute(f'DROP ROLE IF EXISTS "{owner}"')


def test_a_worker_with_the_device_role_finishes_a_run_that_the_owner_submitted(
    roles: Roles, broker_url: str, archive: Path, tmp_path: Path
) -> None:
    owner = Settings(
        broker_url=broker_url,
        database_url=roles.url(roles.owner),
        queue=f"allscreen-t-{uuid.uuid4().hex[:8]}",
        batch_size=4,
    )
    device = owner.model_copy(update={"database_url": roles.url(roles.device)})
    err = io.StringIO()
    with workers(device, tmp_path, "roles-dev") as (w,):
        submit([archive], owner, run_name="roles", err=err)
        watch("roles", owner, err=err)
        log = w.text()
    results = outcomes(owner)
    assert len(results) == 24 and {s for s, _ in results.values()} == {"done"}
    line = next(x for x in log.splitlines() if x.startswith("ok    database"))
    assert "warning: the database user" not in line


def test_every_write_path_of_a_worker_works_under_the_device_role(roles: Roles) -> None:
    with psycopg.connect(roles.url(roles.owner), autocommit=True) as conn:
        run_id = conn.execute(
            "INSERT INTO runs (name, created_at) VALUES (%s, now()) RETURNING id",
            (f"paths-{uuid.uuid4().hex[:6]}",),
        ).fetchone()
        assert run_id is not None
        image_id = conn.execute(
            "INSERT INTO images (run_id, sha256, path, location, size_bytes, deliveries) "
            "VALUES (%s, 'ab', 'p/x.jpg', 'x', 1, 0) RETURNING id",
            (run_id[0],),
        ).fetchone()
        assert image_id is not None
        known = uuid.uuid4().hex
        conn.execute(
            "INSERT INTO models (sha256, labels, thresholds, first_seen) "
            "VALUES (%s, '[]', '[]', now())",
            (known,),
        )
    run, image = int(run_id[0]), int(image_id[0])
    engine = make_engine(roles.url(roles.device))
    try:
        assert begin_batch(engine, run, [image]) == (set(), {image: 1})
        now = datetime.now(UTC)
        upsert_results(engine, [ResultRow(run, image, "failed", "d", now, error="x")])
        upsert_results(engine, [ResultRow(run, image, "done", "d", now, label="Pro")])
        assert begin_batch(engine, run, [image]) == ({image}, {image: 2})
        for _ in range(2):  # the second takes the ON CONFLICT branch
            record_refusal(engine, run, device="d", model_sha256="f" * 64, model_file="m.eim")
        # One model new to the table, one already recorded by another device (ON CONFLICT).
        for sha in (uuid.uuid4().hex, known):
            record_model(engine, sha256=sha, name="m", version="1", labels=(), thresholds="[]")
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE results",
        "DELETE FROM results",
        "TRUNCATE results",
        "CREATE TABLE stolen (x int)",
        "ALTER TABLE results ADD COLUMN x int",
        "SELECT path FROM images",
        "SELECT location FROM images",
        "SELECT name FROM runs",
        "SELECT name, patient FROM cases",
        "SELECT * FROM runs",
        "SELECT * FROM verdicts",
        "SELECT * FROM cases",
        "UPDATE images SET path = 'x'",
        "DELETE FROM images",
        "CREATE ROLE intruder",
    ],
)
def test_the_device_role_cannot_change_the_schema_delete_or_read_outside_its_grant(
    roles: Roles, statement: str
) -> None:
    with (
        psycopg.connect(roles.url(roles.device)) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_worker_check_warns_when_a_device_holds_owner_credentials(
    roles: Roles, broker_url: str
) -> None:
    for role, expected in [
        ("postgres", "is a superuser"),
        (roles.owner, "owns the tables"),
        (roles.device, None),
    ]:
        r = allscreen(
            "worker",
            "--check",
            settings=Settings(broker_url=broker_url, database_url=roles.url(role)),
        )
        assert r.returncode == 0, r.stderr
        (line,) = [x for x in r.stderr.splitlines() if x.startswith("ok    database")]
        if expected is None:
            assert "warning: the database user" not in line, line
        else:
            assert f"warning: the database user {role} " in line and expected in line, line
            assert "can delete results" in line and "allscreen db roles" in line
