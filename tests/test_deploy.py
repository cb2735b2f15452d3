"""Deployment files cannot run here (no Docker engine, no Jetson), so they are checked by
parsing: every command they run exists, every path they name is there, every setting is one
allscreen knows, secrets have no defaults, and the linters pass."""

from __future__ import annotations

import configparser
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from allscreen.defaults import REPO_ROOT
from allscreen.settings import unknown_keys
from cli.main import cli
from worker.libraries import JETPACK_LIBRARIES

JETSON = REPO_ROOT / "deploy" / "jetson"
DOCKERFILES = (REPO_ROOT / "Dockerfile", JETSON / "Dockerfile")
COMPOSE_JETSON = REPO_ROOT / "compose.jetson.yaml"
UNIT = JETSON / "allscreen-worker.service"
INSTALL = JETSON / "install.sh"
ENV_EXAMPLE = JETSON / "worker.env.example"
RUNBOOK = REPO_ROOT / "docs" / "add-a-jetson-nano.md"
IN_CI = bool(os.environ.get("CI"))


def tool(name: str) -> str:
    """The path of a linter installed by `scripts/dev setup`; skipped locally when absent."""
    venv_bin = REPO_ROOT / ".venv" / "bin" / name
    found = str(venv_bin) if venv_bin.exists() else shutil.which(name)
    if found is None:
        message = f"{name} is not installed (`scripts/dev setup` installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        word, _, rest = (pending + line).partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def build_args(dockerfile: Path) -> dict[str, str]:
    """The ARG defaults of a Dockerfile."""
    return dict(
        arg.split("=", 1) for kind, arg in instructions(dockerfile) if kind == "ARG" and "=" in arg
    )


def shell_vars(script: Path) -> dict[str, str]:
    """Plain `NAME=value` assignments at the start of a line of a shell script."""
    return dict(re.findall(r"^([A-Z0-9_]+)=([^\s$\"]+)$", script.read_text(), re.M))


def assert_allscreen_command(argv: list[str], where: str) -> None:
    """`argv` is an `allscreen` command line naming commands the CLI has."""
    assert Path(argv[0]).name == "allscreen", where
    group: Any = cli
    for word in argv[1:]:
        if word.startswith("-") or not isinstance(group, click.Group):
            break
        assert word in group.commands, f"{where}: allscreen has no command {word!r}"
        group = group.commands[word]


# Dockerfiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_file_a_dockerfile_copies_from_the_context_exists(dockerfile: Path) -> None:
    for kind, args in instructions(dockerfile):
        if kind == "COPY" and not args.startswith("--from"):
            for src in args.split()[:-1]:
                assert (REPO_ROOT / src).exists(), f"{dockerfile.name}: COPY {src}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_a_dockerfile_sets_only_known_settings_and_runs_a_real_command(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    env_keys = re.findall(r"\b(ALLSCREEN_\w+)=", " ".join(a for k, a in steps if k == "ENV"))
    assert env_keys and unknown_keys(dict.fromkeys(env_keys, "")) == []
    (cmd,) = [a for k, a in steps if k == "CMD"]
    assert_allscreen_command(yaml.safe_load(cmd), f"{dockerfile.name} CMD")
    model = re.search(r"ALLSCREEN_MODEL=/app/(\S+)", " ".join(a for k, a in steps))
    assert model is not None and (REPO_ROOT / model.group(1)).is_file()


def test_the_jetson_image_is_l4t_r32_with_its_own_python_311_checked_by_sha256() -> None:
    args = build_args(JETSON / "Dockerfile")
    assert re.fullmatch(r"nvcr\.io/nvidia/l4t-base:r32\.7\.\d+", args["L4T_BASE"])
    assert tuple(int(x) for x in args["PYTHON_VERSION"].split(".")[:2]) >= (3, 11)
    assert re.fullmatch(r"[0-9a-f]{64}", args["PYTHON_SHA256"])
    text = (JETSON / "Dockerfile").read_text()
    assert "sha256sum -c -" in text and "aarch64-unknown-linux-gnu-install_only" in text
    froms = [a for k, a in instructions(JETSON / "Dockerfile") if k == "FROM"]
    assert froms == ["${L4T_BASE} AS build", "${L4T_BASE}"]


def test_the_jetpack_libraries_the_jetson_image_names_are_the_ones_the_check_explains() -> None:
    named = set(re.findall(r"\b(lib[a-zA-Z_]+)(?:\.so|\*)", (JETSON / "Dockerfile").read_text()))
    assert {"libnvinfer", "libcudart", "libcublas", "libcudnn", "libcuda"} <= named
    for lib in named - {"libportaudio"}:
        assert f"{lib}.".startswith(JETPACK_LIBRARIES) or lib.startswith(JETPACK_LIBRARIES), lib


def test_the_dockerfiles_pass_hadolint() -> None:
    r = subprocess.run(
        [tool("hadolint"), *map(str, DOCKERFILES)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr


# compose.jetson.yaml -------------------------------------------------------------------------


def _jetson_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_JETSON.read_text())
    return data


def test_the_jetson_compose_runs_only_one_gpu_worker_per_device() -> None:
    services = _jetson_compose()["services"]
    assert list(services) == ["worker"]
    worker = services["worker"]
    assert worker["runtime"] == "nvidia"
    assert worker["container_name"]  # a fixed name: `--scale` cannot start a second one
    assert "replicas" not in (worker.get("deploy") or {})
    assert "ports" not in worker
    assert worker["command"][worker["command"].index("--concurrency") + 1] == "1"
    assert_allscreen_command(worker["command"], "compose.jetson.yaml worker")


def test_the_jetson_compose_builds_the_jetson_dockerfile_from_the_repository() -> None:
    build = _jetson_compose()["services"]["worker"]["build"]
    assert (REPO_ROOT / build["context"] / build["dockerfile"]) == JETSON / "Dockerfile"


def test_every_variable_of_the_jetson_compose_is_required() -> None:
    text = COMPOSE_JETSON.read_text()
    refs = re.findall(r"\$\{(\w+)([^}]*)\}", text)
    assert {name for name, _ in refs} >= {
        "ALLSCREEN_BROKER_URL",
        "ALLSCREEN_DATABASE_URL",
        "ALLSCREEN_DEVICE",
        "MODEL_DIR",
    }
    for name, op in refs:
        assert op.startswith(":?"), f"${{{name}}} must be required (`:?`), not defaulted"


def test_the_jetson_worker_gets_known_settings_and_a_model_inside_its_mount() -> None:
    worker = _jetson_compose()["services"]["worker"]
    env = worker["environment"]
    assert unknown_keys(env) == []
    targets = [re.sub(r"\$\{[^}]*\}", "HOST", v).split(":")[1] for v in worker["volumes"]]
    assert any(env["ALLSCREEN_MODEL"].startswith(t + "/") for t in targets)


def test_the_jetson_health_check_pings_the_workers_own_celery_node() -> None:
    test = _jetson_compose()["services"]["worker"]["healthcheck"]["test"]
    assert test[:5] == ["CMD", "celery", "-A", "worker.app", "inspect"]
    assert (REPO_ROOT / "worker" / "app.py").exists()
    node = test[test.index("--destination") + 1]
    device = "${ALLSCREEN_DEVICE:?}"
    assert node == f"{device}@{device}"  # `allscreen worker` names itself DEVICE@hostname


# systemd unit and install script -------------------------------------------------------------


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_starts_the_worker_the_install_script_installs() -> None:
    unit, script = _unit(), shell_vars(INSTALL)
    prefix = re.search(r"^PREFIX=\$\{PREFIX:-([^}]+)\}$", INSTALL.read_text(), re.M)
    assert prefix is not None
    argv = unit["Service"]["ExecStart"].split()
    assert argv[0] == f"{prefix.group(1)}/venv/bin/allscreen"
    assert_allscreen_command(argv, "ExecStart")
    assert unit["Service"]["EnvironmentFile"] == f"{script['CONF_DIR']}/worker.env"
    assert unit["Service"]["User"] == "allscreen" and "useradd" in INSTALL.read_text()
    assert "video" in unit["Service"]["SupplementaryGroups"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The unit's ExecStart exists only on a device: point it at this checkout's allscreen.
    here = shutil.which("allscreen") or str(REPO_ROOT / ".venv" / "bin" / "allscreen")
    text = UNIT.read_text().replace("/opt/allscreen/venv/bin/allscreen", here)
    (tmp_path / UNIT.name).write_text(text)
    r = subprocess.run(
        [analyze, "verify", str(tmp_path / UNIT.name)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stderr


def test_the_settings_template_names_only_known_settings_and_no_real_host() -> None:
    pairs = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert unknown_keys(pairs) == []
    assert {"ALLSCREEN_BROKER_URL", "ALLSCREEN_DATABASE_URL", "ALLSCREEN_DEVICE"} <= set(pairs)
    for key in ("ALLSCREEN_BROKER_URL", "ALLSCREEN_DATABASE_URL"):
        assert ".invalid:" in pairs[key], f"{key} must point nowhere until it is set"
    assert pairs["ALLSCREEN_MODEL"] == "/opt/allscreen/models/modelfile.eim"
    assert '"$PREFIX/models"' in INSTALL.read_text()


def test_the_install_script_and_the_jetson_image_fetch_the_same_python() -> None:
    args, script = build_args(JETSON / "Dockerfile"), shell_vars(INSTALL)
    for key in ("PYTHON_VERSION", "PBS_RELEASE", "PYTHON_SHA256"):
        assert script[key] == args[key], key


def test_every_file_the_install_script_installs_exists() -> None:
    text = INSTALL.read_text()
    names = re.findall(r'"\$here/([^"./][^"/]*)"', text)
    assert set(names) == {"worker.env.example", "allscreen-worker.service"}
    for name in names:
        assert (JETSON / name).is_file(), name
    assert os.access(INSTALL, os.X_OK)


def test_the_install_script_passes_bash_n_and_shellcheck() -> None:
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    r = subprocess.run(
        [tool("shellcheck"), str(INSTALL)], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0, r.stdout


@pytest.mark.skipif(platform.machine() == "aarch64", reason="it would install on an arm64 box")
def test_the_install_script_refuses_a_machine_that_is_not_a_jetson_before_changing_anything(
    tmp_path: Path,
) -> None:
    r = subprocess.run(
        ["bash", str(INSTALL)],
        env={**os.environ, "PREFIX": str(tmp_path / "prefix")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 1
    assert r.stderr.strip().startswith("install.sh: ")
    assert not (tmp_path / "prefix").exists()


# Runbook -------------------------------------------------------------------------------------


def test_the_runbook_is_linked_from_the_readme_and_its_paths_exist() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "docs/add-a-jetson-nano.md" in readme
    text = RUNBOOK.read_text()
    for needed in (
        "edge-impulse-linux-runner --download modelfile.eim",
        "compose.jetson.yaml",
        "deploy/jetson/install.sh",
        "allscreen worker --check",
        "allscreen devices",
        "Flower",
    ):
        assert needed in text, needed
    for path in re.findall(r"`((?:deploy|docs|worker|model)/[\w./-]+|compose[\w.]*\.yaml)`", text):
        assert (REPO_ROOT / path).exists(), path


def test_the_build_context_leaves_out_training_caches_cut_from_the_data_set() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    assert "model/.train-cache" in ignored
    assert ".venv" in ignored and ".git" in ignored


def test_every_python_package_of_the_project_is_copied_into_both_images() -> None:
    packages = sorted(
        p.name for p in REPO_ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"
    )
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        missing = [p for p in packages if f"COPY {p} ./{p}" not in text and p != "bench"]
        assert not missing, f"{dockerfile} does not copy {missing}"
