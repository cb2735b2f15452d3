"""Checks a worker runs before it takes any job; `allscreen worker --check` runs only these.

In order: the model file (present, executable, built for this CPU, its sha256), the shared
libraries a native model links against, the model itself (starts and answers `hello` within
ALLSCREEN_MODEL_START_TIMEOUT, with its name, version and labels), the broker and the
database. A model check that cannot succeed because an earlier one failed is skipped, so a
single cause gives a single FAIL line. The broker and database lines carry a warning when the
device holds owner credentials (`worker.privileges`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from allscreen.db import ensure_schema, get_engine
from allscreen.errors import AllscreenError, BrokerUnavailable, ModelError, SchemaMissing
from allscreen.settings import Settings, mask_url
from worker.heartbeat import ModelIdentity
from worker.libraries import NVIDIA_HINT, check_libraries
from worker.modelfile import check_model_file, elf_machine, file_sha256
from worker.privileges import broker_owner_rights, database_owner_rights, owner_warning

SCHEMA_POLL_SECONDS = 2.0  #: how often a waiting worker looks for the schema
SCHEMA_REPORT_SECONDS = 60.0  #: how often it says it is still waiting


@dataclass(slots=True)
class CheckReport:
    """What the checks found: the failures, and the model's identity when it answered."""

    failures: list[AllscreenError] = field(default_factory=list)
    passed: int = 0
    skipped: int = 0
    model: ModelIdentity | None = None

    @property
    def total(self) -> int:
        """Checks run or skipped."""
        return self.passed + len(self.failures) + self.skipped


def describe_model_file(settings: Settings) -> str:
    """The model file is there, executable and built for this CPU; give its sha256."""
    path = settings.model
    check_model_file(path)
    machine = elf_machine(path)
    kind = f"native {machine} binary" if machine else "script"
    return f"model file {path}: {kind}, executable, sha256 {file_sha256(path)}"


def describe_model_libraries(settings: Settings) -> str:
    """Every shared library a native model links against resolves on this machine."""
    path = settings.model
    if elf_machine(path) is None:
        return "model libraries: a script links no libraries of its own"
    report = check_libraries(path)
    if report.missing:
        raise ModelError(
            f"model {path} needs libraries this machine lacks: {', '.join(report.missing)}"
            + (f"; {NVIDIA_HINT}" if report.jetpack_missing else "")
        )
    return f"model libraries: {report.note or f'all {report.resolved} resolve'}"


def start_model(settings: Settings) -> tuple[str, ModelIdentity]:
    """Start the model, wait for `hello` within the start timeout, and stop it again."""
    from worker.runner import GuardedImageRunner

    limit = settings.model_start_timeout
    runner = GuardedImageRunner(str(settings.model), start_timeout=limit, timeout=limit)
    t0 = time.monotonic()
    try:
        hello = runner.init()
    finally:
        runner.stop()
    elapsed = time.monotonic() - t0
    project = hello.get("project", {})
    identity = ModelIdentity(
        file=str(settings.model),
        sha256=file_sha256(settings.model),
        name=str(project.get("name", "unknown")),
        version=str(project.get("deploy_version", "")),
        labels=tuple(str(x) for x in hello["model_parameters"]["labels"]),
    )
    line = (
        f"model started and answered hello in {elapsed:.2f} s (limit {limit:g} s): "
        f"{identity.name} v{identity.version}, labels {', '.join(identity.labels)}"
    )
    return line, identity


def check_broker(settings: Settings) -> str:
    """The broker answers; warns when its user holds more than a device needs."""
    import redis

    url = settings.effective_broker_url
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        with client:
            client.ping()
            user, rights = broker_owner_rights(client)
    except (redis.RedisError, OSError, ValueError) as exc:
        raise BrokerUnavailable(f"cannot reach the broker at {mask_url(url)}: {exc}") from exc
    line = f"broker {mask_url(url)} reachable"
    if rights:
        line += owner_warning("broker", user, rights, "the devices' user (allscreen broker acl)")
    return line


def check_database(settings: Settings) -> str:
    """The database answers and its schema is current; warns when PostgreSQL never analyzes,
    and when its user holds more than a device needs."""
    engine = get_engine(settings.database_url)
    ensure_schema(engine, create=False)
    line = f"database {mask_url(settings.database_url)} reachable, schema current"
    user, rights = database_owner_rights(engine)
    if rights:
        line += owner_warning("database", user, rights, "the device role (allscreen db roles)")
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
        if autovacuum != "on":
            line += (
                "; warning: autovacuum is off, so the planner's statistics go stale as a run "
                "grows and each batch's lookups slow down with the run's size (turn it on, or "
                "run ANALYZE images, results now and then)"
            )
    return line


def wait_for_schema(
    settings: Settings,
    report: Callable[[str], None],
    *,
    poll: float = SCHEMA_POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until the database has the allscreen schema, saying so once a minute."""
    said = -SCHEMA_REPORT_SECONDS
    waited = 0.0
    while True:
        try:
            report(f"ok    {check_database(settings)}")
            return
        except SchemaMissing:
            if waited - said >= SCHEMA_REPORT_SECONDS:
                report(
                    "wait  the database has no allscreen schema yet; waiting for it (the "
                    "producer's first `allscreen submit`, or `allscreen db upgrade`, creates it)"
                )
                said = waited
        sleep(poll)
        waited += poll


def run_checks(settings: Settings, report: Callable[[str], None]) -> CheckReport:
    """Run every check, reporting one line each; return the failures and the model identity."""
    out = CheckReport()

    def attempt(check: Callable[[], str]) -> bool:
        try:
            line = check()
        except AllscreenError as exc:
            report(f"FAIL  {exc}")
            out.failures.append(exc)
            return False
        report(f"ok    {line}")
        out.passed += 1
        return True

    def skip(what: str, why: str) -> None:
        report(f"skip  {what}: {why}")
        out.skipped += 1

    def model_start() -> str:
        line, out.model = start_model(settings)
        return line

    if not attempt(lambda: describe_model_file(settings)):
        skip("model libraries", "the model file check failed")
        skip("model start", "the model file check failed")
    elif not attempt(lambda: describe_model_libraries(settings)):
        skip("model start", "the model's libraries are missing")
    else:
        attempt(model_start)
    attempt(lambda: check_broker(settings))
    attempt(lambda: check_database(settings))
    return out
