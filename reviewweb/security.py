"""Who may use the review page, and proof that a form was posted by the page itself.

The rules are `allscreen flower`'s: loopback by default; any other address is refused unless
authentication is configured. Authentication is HTTP basic auth against salted scrypt hashes
(`allscreen serve --hash-password` prints one), so no password is kept in a file or a
process list in the clear. Every POST carries a CSRF token bound to the browser's session
cookie (an HMAC of it under a key made when the server starts); cookies are `HttpOnly`,
`SameSite=Strict`, and `Secure` when the page is served over TLS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from allscreen.defaults import DEFAULT_MONITOR_ADDRESS
from allscreen.errors import ConfigError
from worker.flower import is_loopback

SCRYPT_N = 2**14  #: scrypt cost: ~50 ms per hash here, so guessing is slow and login is not
SCRYPT_R = 8
SCRYPT_P = 1
SCHEME = "scrypt"  #: the first field of a hash, so other schemes can be added later
SESSION_COOKIE = "allscreen_session"  #: a random token per browser; CSRF tokens are bound to it
REVIEWER_COOKIE = "allscreen_reviewer"  #: the name a reviewer gave, where auth is off
CSRF_FIELD = "csrf"  #: the hidden form field carrying the token
MAX_AUTH_CACHE = 64  #: verified Authorization headers remembered, so scrypt runs once per login


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of `password`: `scrypt$N$r$p$SALT$HASH` (base64 fields)."""
    if not password:
        raise ConfigError("an empty password cannot be hashed")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"{SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def _fields(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, n, r, p, salt, digest = encoded.split("$")
    if scheme != SCHEME:
        raise ValueError(scheme)
    return int(n), int(r), int(p), base64.b64decode(salt), base64.b64decode(digest)


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches a hash made by `hash_password` (constant-time compare)."""
    n, r, p, salt, digest = _fields(encoded)
    maxmem = 128 * n * r * p + 1024 * 1024
    got = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=maxmem
    )
    return hmac.compare_digest(got, digest)


def parse_credentials(value: str | None) -> dict[str, str]:
    """`user:HASH[,user:HASH]` as user → hash; a clear-text password is refused."""
    if not value:
        return {}
    out: dict[str, str] = {}
    for pair in (p.strip() for p in value.split(",") if p.strip()):
        user, _, encoded = pair.partition(":")
        try:
            _fields(encoded)
        except (ValueError, binascii.Error):
            raise ConfigError(
                "--basic-auth must be user:HASH with HASH from `allscreen serve "
                "--hash-password` (a salted scrypt hash, never the password itself)"
            ) from None
        if not user:
            raise ConfigError("--basic-auth names an empty user")
        out[user] = encoded
    return out


def check_exposure(address: str, credentials: Mapping[str, str]) -> None:
    """Refuse to serve beyond this host without authentication (as `allscreen flower`)."""
    if not is_loopback(address) and not credentials:
        raise ConfigError(
            f"refusing to serve the review page on {address or 'every interface'} without "
            "authentication: pass --basic-auth user:HASH (see --hash-password), "
            f"or bind to {DEFAULT_MONITOR_ADDRESS}"
        )


def basic_auth_user(header: str | None, credentials: Mapping[str, str]) -> str | None:
    """The user an `Authorization: Basic` header proves, or None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    encoded = credentials.get(user)
    if not sep or encoded is None:
        # Spend the same time as a real check, so a response's timing reveals no user name.
        verify_password(password or "-", next(iter(credentials.values())))
        return None
    return user if verify_password(password, encoded) else None


@dataclass(slots=True)
class Guard:
    """Authentication and CSRF for one server: credentials, and a key made at start-up."""

    credentials: Mapping[str, str]
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _verified: dict[str, str] = field(default_factory=dict)

    @property
    def auth_on(self) -> bool:
        """Whether users must sign in (basic auth configured)."""
        return bool(self.credentials)

    def user(self, header: str | None) -> str | None:
        """The signed-in user of a request's Authorization header (remembered once proven)."""
        if header is None:
            return None
        tag = hmac.new(self.key, header.encode(), hashlib.sha256).hexdigest()
        if tag in self._verified:
            return self._verified[tag]
        user = basic_auth_user(header, self.credentials)
        if user is not None:
            if len(self._verified) >= MAX_AUTH_CACHE:
                self._verified.clear()
            self._verified[tag] = user
        return user

    def csrf_token(self, session: str) -> str:
        """The token forms of this session carry."""
        return hmac.new(self.key, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: str | None, token: object) -> bool:
        """Whether `token` is the one issued to `session`."""
        if not session or not isinstance(token, str):
            return False
        return hmac.compare_digest(self.csrf_token(session), token)


def new_session() -> str:
    """A fresh session token for a browser that has none."""
    return secrets.token_urlsafe(32)
