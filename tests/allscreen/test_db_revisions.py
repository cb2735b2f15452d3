"""The schema check reads revisions without Alembic: it must agree with Alembic's own answer."""

from __future__ import annotations

from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from allscreen.db import alembic_config, current_revision, ensure_schema, head_revision, make_engine


def test_head_revision_is_alembics_head() -> None:
    assert (
        head_revision()
        == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    )


def test_current_revision_is_alembics_on_empty_and_migrated_databases(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    assert current_revision(engine) is None
    ensure_schema(engine, create=True)
    with engine.connect() as conn:
        expected = MigrationContext.configure(conn).get_current_revision()
    assert current_revision(engine) == expected == head_revision()
