"""compose.yaml cannot run here (no Docker engine), so it is checked by parsing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from allscreen.defaults import REPO_ROOT
from cli.main import cli

COMPOSE = REPO_ROOT / "compose.yaml"
SECRET = re.compile(r"PASSWORD|AUTH|SECRET|TOKEN", re.I)


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_has_the_services_of_a_fleet() -> None:
    services = _compose()["services"]
    assert {"redis", "postgres", "flower", "worker", "producer"} <= set(services)
    assert "deploy" not in services["worker"] or "replicas" not in services["worker"]["deploy"]
    assert "container_name" not in services["worker"]  # `--scale worker=N` needs this


def test_every_allscreen_command_in_compose_exists_in_the_cli() -> None:
    for name, svc in _compose()["services"].items():
        command = svc.get("command")
        if not command or command[0] != "allscreen":
            continue
        group: Any = cli
        for word in command[1:]:
            if word.startswith("-") or not hasattr(group, "commands"):
                break
            assert word in group.commands, f"{name}: allscreen has no command {word!r}"
            group = group.commands[word]


def test_celery_commands_in_compose_point_at_the_project_app() -> None:
    for svc in _compose()["services"].values():
        command = svc.get("command") or []
        if command and command[0] == "celery":
            module = command[command.index("-A") + 1]
            assert (REPO_ROOT / (module.replace(".", "/") + ".py")).exists()


def test_services_that_build_the_project_use_a_dockerfile_that_exists() -> None:
    for svc in _compose()["services"].values():
        if "build" in svc:
            assert (REPO_ROOT / svc["build"] / "Dockerfile").exists()
            for line in (REPO_ROOT / "Dockerfile").read_text().splitlines():
                if line.startswith("COPY "):
                    for src in line.split()[1:-1]:
                        assert (REPO_ROOT / src).exists(), src


def test_every_dependency_waits_for_a_health_check() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond["condition"] in {"service_healthy", "service_completed_successfully"}
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on {dep} with no check"


def test_no_secret_has_a_default() -> None:
    text = COMPOSE.read_text()
    for var, op in re.findall(r"\$\{(\w+)(:?[-?])", text):
        if SECRET.search(var):
            assert op in {":?", "?"}, f"{var} must be required, not defaulted"


def test_flower_listens_only_on_loopback_of_the_host_and_requires_auth() -> None:
    flower = _compose()["services"]["flower"]
    assert all(str(p).startswith("127.0.0.1:") for p in flower.get("ports", []))
    assert "FLOWER_BASIC_AUTH" in flower["environment"]


def test_the_readme_points_at_compose() -> None:
    assert "compose" in Path(REPO_ROOT / "README.md").read_text()
