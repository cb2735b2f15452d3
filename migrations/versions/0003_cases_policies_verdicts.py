"""cases, screening policies, models seen, reviewer verdicts

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("patient", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_cases_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("run_id", "name", name="uq_cases_run_name"),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("case_id", BIG_ID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_images_case_id_cases"), "cases", ["case_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index(batch_op.f("ix_images_case_id"), ["case_id"], unique=False)
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_policies_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
    )
    op.create_index("ix_policies_run_id", "policies", ["run_id", "id"], unique=False)
    op.create_table(
        "models",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("version", sa.String(length=50), nullable=True),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("thresholds", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_models")),
    )
    op.create_table(
        "verdicts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("image_id", BIG_ID, nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_label", sa.String(length=100), nullable=True),
        sa.Column("model_confidence", sa.Float(), nullable=True),
        sa.Column("model_call", sa.String(length=10), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_verdicts_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_verdicts_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdicts")),
    )
    op.create_index("ix_verdicts_run_image", "verdicts", ["run_id", "image_id", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_verdicts_run_image", table_name="verdicts")
    op.drop_table("verdicts")
    op.drop_table("models")
    op.drop_index("ix_policies_run_id", table_name="policies")
    op.drop_table("policies")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_case_id"))
        batch_op.drop_constraint(batch_op.f("fk_images_case_id_cases"), type_="foreignkey")
        batch_op.drop_column("case_id")
    op.drop_table("cases")
