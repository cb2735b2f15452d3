"""`allscreen flower`: Flower on the project's Celery app, with safe defaults.

Safe means: bound to loopback unless told otherwise, and refusing any other address without
basic auth or a complete OAuth setup; read-only (no remote shutdown or pool changes) unless
`--control`; task events switched on by Flower itself; state kept on disk; no
`flowerconfig.py` picked up from whatever folder it was started in.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path

from allscreen.defaults import DEFAULT_FLOWER_DB, DEFAULT_FLOWER_PORT, DEFAULT_MONITOR_ADDRESS
from allscreen.errors import ConfigError

#: Milliseconds between saves of Flower's state, so a crash loses at most this much history.
DEFAULT_STATE_SAVE_INTERVAL_MS = 60_000

#: Flower options that `allscreen flower` sets itself; passing them through would bypass the
#: address and authentication checks, so extra arguments may not name them.
PROTECTED_OPTIONS = frozenset(
    {
        "address",
        "port",
        "unix_socket",
        "basic_auth",
        "auth",
        "auth_provider",
        "oauth2_key",
        "oauth2_secret",
        "oauth2_redirect_uri",
        "persistent",
        "db",
        "enable_events",
        "read_only",
    }
)


@dataclass(frozen=True, slots=True)
class OAuth:
    """Flower's OAuth2 login: who may log in, through which provider, with which app."""

    auth: str | None = None  #: e-mail pattern of the users let in (`--auth`)
    provider: str | None = None  #: login handler class, e.g. flower.views.auth.GithubLoginHandler
    key: str | None = None
    secret: str | None = None
    redirect_uri: str | None = None

    def missing(self) -> list[str]:
        """The OAuth options still unset (all five are needed for a working login)."""
        names = {
            "--auth": self.auth,
            "--auth-provider": self.provider,
            "--oauth2-key": self.key,
            "--oauth2-secret": self.secret,
            "--oauth2-redirect-uri": self.redirect_uri,
        }
        return [name for name, value in names.items() if not value]

    @property
    def configured(self) -> bool:
        """Whether any OAuth option was given."""
        return any((self.auth, self.provider, self.key, self.secret, self.redirect_uri))


@dataclass(frozen=True, slots=True)
class FlowerOptions:
    """What `allscreen flower` was asked for."""

    address: str = DEFAULT_MONITOR_ADDRESS
    port: int = DEFAULT_FLOWER_PORT
    db: Path = Path(DEFAULT_FLOWER_DB)
    basic_auth: tuple[str, ...] = ()  #: `user:password` pairs
    oauth: OAuth = field(default_factory=OAuth)
    control: bool = False  #: allow shutting down workers and resizing pools from the UI
    extra: tuple[str, ...] = ()  #: further Flower options, passed through unchanged


def is_loopback(address: str) -> bool:
    """Whether `address` only accepts connections from this host ('' means every interface)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything: treat it as exposed


def parse_basic_auth(value: str | None) -> tuple[str, ...]:
    """`user:pass[,user:pass]` (Flower's syntax) as pairs; refuse an empty user or password."""
    if not value:
        return ()
    pairs = tuple(p.strip() for p in value.split(",") if p.strip())
    for pair in pairs:
        user, sep, password = pair.partition(":")
        if not sep or not user or not password:
            raise ConfigError("basic auth must be user:password (FLOWER_BASIC_AUTH, --basic-auth)")
    return pairs


def _option_name(arg: str) -> str:
    return arg.lstrip("-").partition("=")[0].replace("-", "_")


def check_options(opts: FlowerOptions) -> None:
    """Refuse an exposed Flower without authentication, and half-configured OAuth."""
    protected = sorted(
        {_option_name(a) for a in opts.extra if a.startswith("-")} & PROTECTED_OPTIONS
    )
    if protected:
        raise ConfigError(
            f"pass {', '.join('--' + p.replace('_', '-') for p in protected)} as an "
            "`allscreen flower` option, not as an extra Flower argument"
        )
    if opts.oauth.configured and opts.oauth.missing():
        raise ConfigError(f"OAuth needs {', '.join(opts.oauth.missing())} as well")
    if not is_loopback(opts.address) and not (opts.basic_auth or opts.oauth.configured):
        raise ConfigError(
            f"refusing to serve Flower on {opts.address or 'every interface'} without "
            "authentication: set FLOWER_BASIC_AUTH=user:password (or --basic-auth, or OAuth), "
            f"or bind to {DEFAULT_MONITOR_ADDRESS}"
        )


def flower_argv(opts: FlowerOptions) -> list[str]:
    """The `celery flower` arguments for `opts` (after `check_options`)."""
    argv = [
        "flower",
        f"--address={opts.address}",
        f"--port={opts.port}",
        "--persistent=True",
        f"--db={opts.db}",
        f"--state_save_interval={DEFAULT_STATE_SAVE_INTERVAL_MS}",
        # Flower broadcasts `enable_events` every few seconds, so workers started without
        # task events (say, plain `celery worker` with another config) still report.
        "--enable_events=True",
        f"--read_only={not opts.control}",
        # An empty config file: never execute a flowerconfig.py found in the cwd.
        "--conf=/dev/null",
    ]
    if opts.basic_auth:
        argv.append(f"--basic_auth={','.join(opts.basic_auth)}")
    o = opts.oauth
    if o.configured:
        argv += [
            f"--auth={o.auth}",
            f"--auth_provider={o.provider}",
            f"--oauth2_key={o.key}",
            f"--oauth2_secret={o.secret}",
            f"--oauth2_redirect_uri={o.redirect_uri}",
        ]
    return argv + list(opts.extra)


def check_port(address: str, port: int) -> None:
    """Refuse a port already taken, in one line rather than Tornado's traceback."""
    try:
        infos = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve Flower address {address!r}: {exc.strerror}") from exc
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            reason = "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ConfigError(f"cannot serve Flower on {address}:{port}: {reason}") from exc


def run_flower(opts: FlowerOptions) -> None:
    """Check `opts`, then serve Flower on allscreen's Celery app until interrupted."""
    check_options(opts)
    check_port(opts.address, opts.port)
    opts.db.parent.mkdir(parents=True, exist_ok=True)
    from worker.app import app

    app.start(flower_argv(opts))
