"""Redis with a password or an ACL user works, and no credential reaches a log or output."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from allscreen.db import ensure_schema, make_engine
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.settings import Settings
from producer.submit import submit, watch
from tests.support.cli import allscreen
from tests.support.runs import outcomes
from tests.support.workers import workers

SECRET = "pa55-Word_42"


@pytest.fixture
def locked_redis() -> Iterator[EmbeddedRedis]:
    """A throwaway Redis with a default password and an ACL user `screener`."""
    redis = EmbeddedRedis(
        extra_args=(
            "--requirepass",
            SECRET,
            "--user",
            "screener",
            "on",
            f">{SECRET}",
            "~*",
            "&*",
            "+@all",
        )
    ).start()
    yield redis
    redis.stop()


@pytest.mark.parametrize(
    "userinfo", [f":{SECRET}", f"screener:{SECRET}"], ids=["password", "acl-user"]
)
def test_a_protected_redis_carries_a_run_and_no_log_shows_the_secret(
    locked_redis: EmbeddedRedis, userinfo: str, sqlite_url: str, archive: Path, tmp_path: Path
) -> None:
    settings = Settings(
        broker_url=f"redis://{userinfo}@127.0.0.1:{locked_redis.port}/0",
        database_url=sqlite_url,
        batch_size=4,
    )
    ensure_schema(make_engine(sqlite_url), create=True)
    err = io.StringIO()
    with workers(settings, tmp_path, "dev") as (w,):
        submit([archive], settings, run_name="auth", err=err)
        watch("auth", settings, err=err)
        log = w.text()
    assert {s for s, _ in outcomes(settings).values()} == {"done"}
    status = allscreen("status", "auth", settings=settings)
    for text in (log, err.getvalue(), status.stdout, status.stderr):
        assert SECRET not in text
    assert ":***@" in log or ":**@" in log


def test_a_wrong_redis_password_is_one_clear_line(
    locked_redis: EmbeddedRedis, sqlite_url: str
) -> None:
    settings = Settings(
        broker_url=f"redis://:n0t-the-pa55@127.0.0.1:{locked_redis.port}/0", database_url=sqlite_url
    )
    ensure_schema(make_engine(sqlite_url), create=True)
    r = allscreen("worker", "--check", settings=settings)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "n0t-the-pa55" not in r.stderr
    assert any(line.startswith("FAIL") and "broker" in line for line in r.stderr.splitlines())
