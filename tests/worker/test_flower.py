"""`allscreen flower`: loopback by default, authentication required anywhere else."""

from __future__ import annotations

from pathlib import Path

import pytest

from allscreen.errors import ConfigError
from allscreen.settings import Settings
from tests.support.cli import allscreen
from tests.support.monitors import free_port, http_get, service
from worker.flower import FlowerOptions, OAuth, check_options, flower_argv, is_loopback

OAUTH = OAuth("*@lab.example", "flower.views.auth.GithubLoginHandler", "k", "s", "https://x/cb")


@pytest.mark.parametrize("address", ["127.0.0.1", "127.3.2.1", "::1", "localhost"])
def test_loopback_addresses_count_as_private(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize("address", ["0.0.0.0", "", "::", "192.168.1.4", "flower.lab"])
def test_other_addresses_count_as_exposed(address: str) -> None:
    assert not is_loopback(address)


def test_flower_runs_persistent_read_only_with_events_enabled_by_default() -> None:
    argv = flower_argv(FlowerOptions(db=Path("/var/lib/flower.db")))
    assert argv[0] == "flower"
    for arg in (
        "--address=127.0.0.1",
        "--persistent=True",
        "--db=/var/lib/flower.db",
        "--enable_events=True",
        "--read_only=True",
        "--conf=/dev/null",
    ):
        assert arg in argv
    assert not any(a.startswith(("--basic_auth", "--auth")) for a in argv)


def test_an_exposed_flower_without_authentication_is_refused() -> None:
    with pytest.raises(ConfigError, match="without authentication"):
        check_options(FlowerOptions(address="0.0.0.0"))


def test_an_exposed_flower_with_basic_auth_or_complete_oauth_is_allowed() -> None:
    check_options(FlowerOptions(address="0.0.0.0", basic_auth=("ops:pw",)))
    check_options(FlowerOptions(address="0.0.0.0", oauth=OAUTH))
    assert "--auth_provider=flower.views.auth.GithubLoginHandler" in flower_argv(
        FlowerOptions(address="0.0.0.0", oauth=OAUTH)
    )


def test_half_configured_oauth_is_refused_even_on_loopback() -> None:
    with pytest.raises(ConfigError, match="--oauth2-secret"):
        check_options(FlowerOptions(oauth=OAuth(auth="*@lab.example", key="k")))


def test_extra_arguments_cannot_override_the_address_or_authentication() -> None:
    for extra in ("--address=0.0.0.0", "--basic-auth=a:b", "--unix_socket=/tmp/f"):
        with pytest.raises(ConfigError, match="as an `allscreen flower` option"):
            check_options(FlowerOptions(extra=(extra,)))
    check_options(FlowerOptions(extra=("--max_tasks=5000",)))


def test_the_cli_refuses_an_exposed_flower_in_one_line(tmp_path: Path) -> None:
    done = allscreen("flower", "--address", "0.0.0.0", cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("allscreen: error: refusing to serve Flower on 0.0.0.0")
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_cli_refuses_a_malformed_basic_auth_in_one_line(tmp_path: Path) -> None:
    done = allscreen(
        "flower", "--address", "0.0.0.0", env={"FLOWER_BASIC_AUTH": "nopassword"}, cwd=tmp_path
    )
    assert done.returncode == 2 and "user:password" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_cli_refuses_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = allscreen("flower", "--port", str(port), cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and "in use" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_flower_keeps_its_state_and_protects_its_pages_with_basic_auth(
    broker_url: str, tmp_path: Path
) -> None:
    import urllib.error

    settings = Settings(broker_url=broker_url)
    port = free_port()
    with service(
        settings,
        tmp_path,
        "flower",
        "--db",
        str(tmp_path / "state" / "flower.db"),
        port=port,
        ready_path="/healthcheck",
        env={"FLOWER_BASIC_AUTH": "ops:pw"},
    ) as flower:
        with pytest.raises(urllib.error.HTTPError) as denied:
            http_get(f"{flower.base_url}/workers")
        assert denied.value.code == 401
        assert "Flower" in http_get(f"{flower.base_url}/workers", auth="ops:pw")
        assert "flower_worker_online" in http_get(f"{flower.base_url}/metrics")
    assert list((tmp_path / "state").glob("flower.db*"))  # --persistent wrote its state


def test_flower_switches_on_task_events_of_workers_started_without_them(
    broker_url: str, tmp_path: Path
) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.support import eventless_app

    env = {**os.environ, eventless_app.BROKER_ENV: broker_url}
    with (tmp_path / "eventless.log").open("wb") as log:
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "tests.support.eventless_app", "worker"),
                *("--pool", "solo", "--without-gossip", "--without-mingle", "--loglevel", "INFO"),
                *("-Q", eventless_app.QUEUE, "-n", "eventless@%h"),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with service(
            Settings(broker_url=broker_url),
            tmp_path,
            "flower",
            "--db",
            str(tmp_path / "flower.db"),
            port=free_port(),
            ready_path="/healthcheck",
            env={"FLOWER_BASIC_AUTH": "ops:pw"},
        ) as flower:
            app = eventless_app.app
            app.conf.broker_url = broker_url
            deadline = time.monotonic() + 45
            seen: list[str] = []
            while time.monotonic() < deadline and not seen:
                app.send_task("tests.ping", queue=eventless_app.QUEUE)
                time.sleep(1)
                tasks = json.loads(http_get(f"{flower.base_url}/api/tasks", auth="ops:pw"))
                seen = [t["state"] for t in tasks.values() if t["name"] == "tests.ping"]
            assert "SUCCESS" in seen, (tmp_path / "eventless.log").read_text()[-2000:]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
