"""TLS on both links, tested: a private CA made at test time, Redis and PostgreSQL on TLS only.

A run completes over `rediss://` with `ssl_cert_reqs=required` and PostgreSQL with
`sslmode=verify-full`; a wrong CA or a host name the certificate does not carry is refused
with one clear line, and the servers accept no plain-text connection to fall back to.
"""

from __future__ import annotations

import io
import os
import pwd
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from allscreen.settings import Settings
from producer.submit import submit, watch
from tests.conftest import need
from tests.support.cli import allscreen
from tests.support.runs import outcomes
from tests.support.tls import REDIS_TLS_BINARY, Pki, TlsPostgres, TlsRedis, make_pki, pg_bin
from tests.support.workers import workers


@dataclass(frozen=True, slots=True)
class TlsServices:
    """Both TLS servers, the CA they trust, and a CA they do not."""

    redis: TlsRedis
    postgres: TlsPostgres
    pki: Pki
    other: Pki

    def settings(self, *, ca: Path | None = None, host: str = "localhost") -> Settings:
        """Settings that verify both servers against `ca` (default: the right one) and `host`."""
        ca = ca or self.pki.ca
        return Settings(
            broker_url=self.redis.url(ca, host),
            database_url=self.postgres.url(ca, host),
            batch_size=4,
            visibility_timeout=30,
        )


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServices]:
    """A TLS-only Redis and PostgreSQL, with certificates from a CA made now."""
    if os.geteuid() == 0:  # initdb refuses root: the servers run as `postgres`
        if shutil.which("setpriv") is None:
            need("running as root without setpriv: cannot start PostgreSQL as its own user")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            need("running as root and there is no `postgres` user to start PostgreSQL as")
    if not os.access(REDIS_TLS_BINARY, os.X_OK):
        need(f"no {REDIS_TLS_BINARY} (Debian's redis-server is built with TLS)")
    try:
        pg_bin()
    except FileNotFoundError as exc:
        need(str(exc))
    folder = tmp_path_factory.mktemp("tls")
    pki, other = make_pki(folder / "ca"), make_pki(folder / "other-ca")
    redis = TlsRedis(pki, folder).start()
    try:
        postgres = TlsPostgres(pki).start()
    except Exception:
        redis.stop()
        raise
    yield TlsServices(redis, postgres, pki, other)
    postgres.stop()
    redis.stop()


def test_a_run_completes_over_verified_tls_to_redis_and_postgresql(
    tls: TlsServices, archive: Path, tmp_path: Path
) -> None:
    settings = tls.settings()
    assert settings.broker_url is not None and settings.broker_url.startswith("rediss://")
    assert "sslmode=verify-full" in settings.database_url
    r = allscreen("db", "upgrade", settings=settings)
    assert r.returncode == 0, r.stderr
    err = io.StringIO()
    with workers(settings, tmp_path, "tls-dev") as (w,):
        submit([archive], settings, run_name="tls", err=err)
        watch("tls", settings, err=err)
        log = w.text()
    results = outcomes(settings)
    assert len(results) == 24 and {s for s, _ in results.values()} == {"done"}
    assert "ok    broker rediss://localhost" in log and "ok    database" in log


@pytest.mark.parametrize(
    ("wrong", "broker_says", "database_says"),
    [
        ("ca", "certificate verify failed", "SSL error"),
        ("host", "certificate is not valid for '127.0.0.1'", "does not match host name"),
    ],
)
def test_a_wrong_ca_or_host_name_is_refused_with_one_line_per_link(
    tls: TlsServices, wrong: str, broker_says: str, database_says: str, archive: Path
) -> None:
    wrong_ca = wrong == "ca"
    settings = tls.settings(ca=tls.other.ca) if wrong_ca else tls.settings(host="127.0.0.1")
    r = allscreen("worker", "--check", settings=settings)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    fails = [line for line in r.stderr.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2, r.stderr
    assert "cannot reach the broker at rediss://" in fails[0] and broker_says in fails[0]
    assert "cannot reach the database" in fails[1] and database_says in fails[1]
    status = allscreen("status", "tls", settings=settings)
    assert status.returncode != 0 and "Traceback" not in status.stderr
    assert len(status.stderr.strip().splitlines()) == 1, status.stderr
    assert database_says in status.stderr
    # The producer, with only the broker link wrong, stops at it with one line too.
    mixed = tls.settings().model_copy(update={"broker_url": settings.broker_url})
    sub = allscreen("submit", str(archive), "--run", f"tls-{wrong}", settings=mixed)
    assert sub.returncode == 3 and "Traceback" not in sub.stderr, sub.stderr
    errors = [line for line in sub.stderr.splitlines() if line.startswith("allscreen: error")]
    assert len(errors) == 1 and "cannot reach the broker" in errors[0], sub.stderr
    assert broker_says in errors[0]


def test_neither_server_accepts_a_plain_text_connection(tls: TlsServices) -> None:
    plain = Settings(
        broker_url=f"redis://localhost:{tls.redis.port}/0",
        database_url=tls.postgres.url(tls.pki.ca).replace("verify-full", "disable"),
    )
    r = allscreen("worker", "--check", settings=plain)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    fails = [line for line in r.stderr.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2, r.stderr
    assert "no pg_hba.conf entry" in fails[1] and "no encryption" in fails[1]
