"""The devices' Redis ACL user: a real worker finishes a run under it, and nothing more.

The server is a throwaway one loaded with the very line `allscreen broker acl` prints; the
producer keeps the owner (`default`, with a password).
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from allscreen.broker_acl import DEVICE_USER, device_rules
from allscreen.db import ensure_schema, make_engine
from allscreen.db_roles import DEVICE_ROLE, OWNER_ROLE
from allscreen.defaults import REPO_ROOT
from allscreen.embedded_redis import EmbeddedRedis
from allscreen.settings import Settings
from producer.submit import submit, watch
from tests.support.cli import allscreen
from tests.support.runs import outcomes
from tests.support.workers import workers

OWNER_SECRET = "own3r-Pass_1"
DEVICE_SECRET = "dev1ce-Pass_2"
USER = "bench-device"


@pytest.fixture(scope="module")
def acl_redis() -> Iterator[EmbeddedRedis]:
    """A throwaway Redis with an owner password and the devices' user as printed."""
    r = subprocess.run(
        [sys.executable, "-m", "allscreen", "broker", "acl", "--user", USER, "--password-stdin"],
        input=DEVICE_SECRET + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    words = line.split()
    assert words[:2] == ["user", USER] and DEVICE_SECRET not in line
    server = EmbeddedRedis(extra_args=("--requirepass", OWNER_SECRET, "--user", *words[1:]))
    server.start()
    yield server
    server.stop()


def _url(server: EmbeddedRedis, userinfo: str) -> str:
    return f"redis://{userinfo}@127.0.0.1:{server.port}/0"


def test_a_worker_under_the_device_user_finishes_a_run_without_a_refused_command(
    acl_redis: EmbeddedRedis, sqlite_url: str, archive: Path, tmp_path: Path
) -> None:
    ensure_schema(make_engine(sqlite_url), create=True)
    owner = Settings(
        broker_url=_url(acl_redis, f":{OWNER_SECRET}"), database_url=sqlite_url, batch_size=4
    )
    device = owner.model_copy(update={"broker_url": _url(acl_redis, f"{USER}:{DEVICE_SECRET}")})
    admin = redis.Redis.from_url(owner.broker_url or "")
    admin.acl_log_reset()
    err = io.StringIO()
    with workers(device, tmp_path, "acl-dev") as (w,):
        submit([archive], owner, run_name="acl", err=err)
        watch("acl", owner, err=err)
        log = w.text()
    assert {s for s, _ in outcomes(owner).values()} == {"done"}
    # redis-py tries CLIENT SETINFO on every connection and ignores a refusal, and the start-up
    # check probes CONFIG GET once (refused: not an owner); nothing else was refused.
    refused = {e["object"]: e["count"] for e in admin.acl_log(count=100) if e["username"] == USER}
    assert set(refused) <= {"client", "config"} and refused.get("config", 1) == 1, refused
    assert "NOPERM" not in log and "no permissions" not in log
    assert f"ok    broker redis://{USER}:***@" in log and "warning: the broker" not in log


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("FLUSHDB",),
        ("CONFIG", "GET", "*"),
        ("CONFIG", "SET", "appendonly", "yes"),
        ("KEYS", "*"),
        ("SCAN", "0"),
        ("MONITOR",),
        ("DEBUG", "SLEEP", "0"),
        ("SHUTDOWN",),
        ("ACL", "SETUSER", USER, "+@all"),
        ("ACL", "LIST"),
        ("CLIENT", "KILL", "TYPE", "normal"),
        ("INFO",),
        ("GET", "another-app:secret"),
        ("SET", "another-app:secret", "x"),
        ("GET", "allscreen:blob:another-queue:1:1"),
        ("DEL", "allscreen:test-suite:db1"),
        ("EVAL", "return redis.call('GET', 'another-app:secret')", "0"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_the_device_user_is_refused_everything_a_worker_does_not_need(
    acl_redis: EmbeddedRedis, command: tuple[str, ...]
) -> None:
    client = redis.Redis.from_url(_url(acl_redis, f"{USER}:{DEVICE_SECRET}"))
    with client, pytest.raises(redis.ResponseError, match=r"(?i)permission|NOPERM|can't access"):
        client.execute_command(*command)
    owner = redis.Redis.from_url(_url(acl_redis, f":{OWNER_SECRET}"))
    assert owner.ping()  # still up: SHUTDOWN and DEBUG were refused


def test_worker_check_warns_when_a_device_holds_the_owner_user(
    acl_redis: EmbeddedRedis, sqlite_url: str
) -> None:
    ensure_schema(make_engine(sqlite_url), create=True)
    owner = Settings(broker_url=_url(acl_redis, f":{OWNER_SECRET}"), database_url=sqlite_url)
    r = allscreen("worker", "--check", settings=owner)
    assert r.returncode == 0, r.stderr
    (line,) = [x for x in r.stderr.splitlines() if " broker " in x]
    assert line.startswith("ok    broker redis://:***@")
    assert "warning: the broker user default is the default user" in line
    assert "may run CONFIG, FLUSHALL" in line and "allscreen broker acl" in line
    assert OWNER_SECRET not in r.stderr


def test_compose_gives_workers_the_device_user_and_role_with_the_printed_rules() -> None:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())["services"]
    command = compose["redis"]["command"]
    at = command.index("--user")
    assert command[at + 1 : at + 4] == [DEVICE_USER, "reset", "on"]
    assert command[at + 4].startswith(">${REDIS_DEVICE_PASSWORD:?")
    assert command[at + 5 :] == device_rules("allscreen", 0)
    worker = compose["worker"]["environment"]
    assert worker["ALLSCREEN_BROKER_URL"].startswith(f"redis://{DEVICE_USER}:")
    assert worker["ALLSCREEN_DATABASE_URL"].startswith(f"postgresql://{DEVICE_ROLE}:")
    assert compose["migrate"]["command"] == ["allscreen", "db", "roles"]
    producer = compose["producer"]["environment"]["ALLSCREEN_DATABASE_URL"]
    assert producer.startswith(f"postgresql://{OWNER_ROLE}:")
