"""Fixtures shared by the producer tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from allscreen.settings import Settings


@pytest.fixture
def client(settings: Settings) -> Iterator[redis.Redis[bytes]]:
    """A client on the test's broker, to look at what the producer queued."""
    assert settings.broker_url is not None
    c: redis.Redis[bytes] = redis.Redis.from_url(settings.broker_url)
    yield c
    c.close()
