"""Bad configuration: one clear line, a non-zero exit, no traceback, no hang."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from allscreen.settings import Settings
from tests.support.cli import allscreen


def _one_line_error(r: object, code: int, *words: str) -> None:
    import subprocess

    assert isinstance(r, subprocess.CompletedProcess)
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("allscreen: error: "), r.stderr
    assert all(w in last for w in words), last


def test_an_unreachable_broker_url_is_one_line(
    settings: Settings, archive: Path, engine: Engine
) -> None:
    r = allscreen(
        "submit",
        str(archive),
        settings=settings,
        timeout=60,
        env={"ALLSCREEN_BROKER_URL": "redis://:s3cret@127.0.0.1:1/0"},
    )
    _one_line_error(r, 3, "cannot reach the broker at redis://:***@127.0.0.1:1/0")
    assert "s3cret" not in r.stderr


def test_a_wrong_database_url_scheme_is_one_line(tmp_path: Path) -> None:
    r = allscreen("status", "x", env={"ALLSCREEN_DATABASE_URL": "not a url"})
    _one_line_error(r, 2, "database URL is not valid")


def test_a_database_older_than_the_code_is_refused_with_the_fix(
    settings: Settings, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    r = allscreen("status", "x", settings=settings)
    _one_line_error(r, 4, "schema is at revision 0000", "allscreen db upgrade")


def test_a_model_that_is_not_a_program_is_an_exec_format_error_line(
    settings: Settings, tmp_path: Path, engine: Engine
) -> None:
    model = tmp_path / "garbage.eim"
    model.write_bytes(b"\x00\x01 not a program \xff" * 20)
    model.chmod(0o755)
    r = allscreen("worker", "--check", settings=settings, env={"ALLSCREEN_MODEL": str(model)})
    assert r.returncode == 1 and "Traceback" not in r.stderr
    fails = [line for line in r.stderr.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "Exec format error" in fails[0], r.stderr
