"""Checks a worker runs before it takes any job; `allscreen worker --check` runs only these."""

from __future__ import annotations

from collections.abc import Callable

from allscreen.db import ensure_schema, get_engine
from allscreen.errors import AllscreenError, BrokerUnavailable
from allscreen.settings import Settings, mask_url
from worker.modelfile import check_model_file, file_sha256

Check = Callable[[Settings], str]


def check_model(settings: Settings) -> str:
    """The model file is usable, starts, and answers `hello`."""
    from worker.runner import GuardedImageRunner

    check_model_file(settings.model)
    runner = GuardedImageRunner(
        str(settings.model),
        start_timeout=settings.model_start_timeout,
        timeout=settings.model_timeout,
    )
    try:
        hello = runner.init()
    finally:
        runner.stop()
    project = hello.get("project", {})
    labels = ", ".join(hello["model_parameters"]["labels"])
    return (
        f"model {settings.model} ({project.get('name')} v{project.get('deploy_version')}, "
        f"sha256 {file_sha256(settings.model)[:12]}): labels {labels}"
    )


def check_broker(settings: Settings) -> str:
    """The broker answers."""
    import redis

    url = settings.effective_broker_url
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise BrokerUnavailable(f"cannot reach the broker at {mask_url(url)}: {exc}") from exc
    return f"broker {mask_url(url)} reachable"


def check_database(settings: Settings) -> str:
    """The database answers and its schema is current."""
    ensure_schema(get_engine(settings.database_url), create=False)
    return f"database {mask_url(settings.database_url)} reachable, schema current"


CHECKS: tuple[Check, ...] = (check_model, check_broker, check_database)


def run_checks(settings: Settings, report: Callable[[str], None]) -> list[AllscreenError]:
    """Run every check, reporting each line; return the failures."""
    failures: list[AllscreenError] = []
    for check in CHECKS:
        try:
            report(f"ok    {check(settings)}")
        except AllscreenError as exc:
            report(f"FAIL  {exc}")
            failures.append(exc)
    return failures
