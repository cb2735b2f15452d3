"""Shared fixtures: real Redis, PostgreSQL and SQLite, flushed or recreated for every test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import Engine

from allscreen.db import ensure_schema, make_engine
from allscreen.settings import Settings
from tests.support.images import DATA, archive_of

IN_CI = bool(os.environ.get("CI"))
REDIS_URL = os.environ.get("ALLSCREEN_TEST_REDIS_URL", "redis://127.0.0.1:6379")
PG_URL = os.environ.get("ALLSCREEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: Redis databases a suite may claim (0 is left to people); each suite flushes only its own.
CLAIMABLE_REDIS_DBS = range(15, 0, -1)
CLAIM_SECONDS = 4 * 3600  #: a claim outlives any suite; one killed hard frees its own later


def need(reason: str) -> None:
    """Skip locally when a service is missing; fail in CI, where `.ci/run` starts them all."""
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def test_redis_db() -> Iterator[int]:
    """The Redis database this suite owns: `ALLSCREEN_TEST_REDIS_DB`, else one claimed for it.

    Two suites on one machine (`scripts/dev test & scripts/dev test`) claim two databases
    (a `SET NX` key each in database 0), so neither flushes the other's queues.
    """
    fixed = os.environ.get("ALLSCREEN_TEST_REDIS_DB")
    if fixed is not None:
        yield int(fixed)
        return
    client = redis.Redis.from_url(f"{REDIS_URL}/0", socket_connect_timeout=2)
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    try:
        for db in CLAIMABLE_REDIS_DBS:
            key = f"allscreen:test-suite:db{db}"
            if client.set(key, token, nx=True, ex=CLAIM_SECONDS):
                yield db
                if client.get(key) == token.encode():
                    client.delete(key)
                return
    except redis.RedisError as exc:
        need(f"no Redis at {REDIS_URL} ({exc}); `scripts/dev services` starts one")
    finally:
        client.close()
    pytest.fail(f"every Redis database 1-15 at {REDIS_URL} is claimed by another test suite")


@pytest.fixture
def broker_url(test_redis_db: int) -> Iterator[str]:
    """A real Redis database, flushed before and after the test."""
    url = f"{REDIS_URL}/{test_redis_db}"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        need(f"no Redis at {REDIS_URL} ({exc}); `scripts/dev services` starts one")
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'results.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test."""
    name = f"allscreen_t_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        need(f"no PostgreSQL at {PG_URL} ({exc}); `scripts/dev services` starts one")
        raise
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    url: str = request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else 'sqlite'}_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a migrated, empty database."""
    eng = make_engine(db_url)
    ensure_schema(eng, create=True)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(broker_url: str, db_url: str) -> Settings:
    """Settings for one test: its own queue, small batches so work spreads over workers."""
    return Settings(
        broker_url=broker_url,
        database_url=db_url,
        queue=f"allscreen-t-{uuid.uuid4().hex[:8]}",
        batch_size=4,
        visibility_timeout=30,
    )


@pytest.fixture
def fleet(broker_url: str, sqlite_url: str) -> Settings:
    """Settings on a real Redis and a migrated SQLite database, with a queue of its own."""
    engine = make_engine(sqlite_url)
    ensure_schema(engine, create=True)
    engine.dispose()
    return Settings(
        broker_url=broker_url,
        database_url=sqlite_url,
        queue=f"allscreen-t-{uuid.uuid4().hex[:8]}",
        batch_size=4,
        visibility_timeout=30,
    )


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A folder of 24 images in label folders: real smears where the shared set exists."""
    return archive_of(tmp_path / "archive", per_class=6)


__all__ = ["DATA", "need"]


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis[bytes]]:
    """A client on the test's broker, to look at what the producer queued."""
    assert settings.broker_url is not None
    c: redis.Redis[bytes] = redis.Redis.from_url(settings.broker_url)
    yield c
    c.close()
