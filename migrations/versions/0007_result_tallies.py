"""tallies: per-run, per-device, per-minute result figures kept by triggers

`status`, `report` and the Prometheus exporter read these few rows instead of every result
(allscreen/tallies.py says why triggers, allscreen/tally_sql.py what they do). Existing
results are counted once here (the backfill), before the triggers exist. The SQL is the
snapshot frozen when this migration was written (migrations/frozen/0007.json), not the
application's code of the day.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from migrations.frozen_sql import load

SQL = load("0007")

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["runs.id"], name=op.f(f"fk_{table}_run_id_runs"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "run_tallies",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("images", sa.BigInteger(), nullable=False, server_default="0"),
        _run_fk("run_tallies"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_tallies")),
    )
    op.create_table(
        "result_tallies",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(200), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        *(
            sa.Column(c, sa.BigInteger(), nullable=False, server_default="0")
            for c in ("done", "failed", "inference_n")
        ),
        sa.Column("inference_ms_sum", sa.Float(), nullable=False, server_default="0"),
        sa.Column("wait_n", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("wait_s_sum", sa.Float(), nullable=False, server_default="0"),
        sa.Column("first_queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        _run_fk("result_tallies"),
        sa.PrimaryKeyConstraint("run_id", "device", "minute", name=op.f("pk_result_tallies")),
    )
    op.create_table(
        "latency_tallies",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False, server_default="0"),
        _run_fk("latency_tallies"),
        sa.PrimaryKeyConstraint(
            "run_id", "device", "kind", "bucket", name=op.f("pk_latency_tallies")
        ),
    )
    op.create_table(
        "label_tallies",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("truth", sa.String(100), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("model_name", sa.String(200), nullable=True),
        sa.Column("model_version", sa.String(50), nullable=True),
        _run_fk("label_tallies"),
        sa.PrimaryKeyConstraint(
            "run_id", "model_sha256", "truth", "label", name=op.f("pk_label_tallies")
        ),
    )
    op.create_table(
        "truth_tallies",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("truth", sa.String(100), nullable=False),
        sa.Column("images", sa.BigInteger(), nullable=False, server_default="0"),
        _run_fk("truth_tallies"),
        sa.PrimaryKeyConstraint("run_id", "truth", name=op.f("pk_truth_tallies")),
    )
    op.create_table(
        "tally_buckets",
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("upper", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name=op.f("pk_tally_buckets")),
        sa.UniqueConstraint("upper", name=op.f("uq_tally_buckets_upper")),
    )
    conn = op.get_bind()
    dialect = conn.dialect.name
    conn.execute(
        sa.text("INSERT INTO tally_buckets (idx, upper) VALUES (:i, :u)"),
        [{"i": i, "u": u} for i, u in enumerate(SQL["buckets"])],
    )
    for (run_id,) in conn.execute(sa.text("SELECT id FROM runs")).all():
        for stmt in SQL["rebuild"][dialect]:
            conn.execute(sa.text(stmt), {"run": int(run_id)})
    for stmt in SQL["create_triggers"][dialect]:
        conn.exec_driver_sql(stmt)


def downgrade() -> None:
    conn = op.get_bind()
    for stmt in SQL["drop_triggers"][conn.dialect.name]:
        conn.exec_driver_sql(stmt)
    for table in (
        "tally_buckets",
        "truth_tallies",
        "label_tallies",
        "latency_tallies",
        "result_tallies",
    ):
        op.drop_table(table)
    op.drop_table("run_tallies")
