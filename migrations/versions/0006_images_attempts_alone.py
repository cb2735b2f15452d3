"""images: attempts_alone, deaths with the image in flight in an isolated batch

A batch delivered more than `ALLSCREEN_MAX_DELIVERIES` times is classified one image at a
time, each result committed at once; the image in flight is counted first, so a worker
process that dies on it leaves the count behind, and only that image is given up on
(`worker/suspects.py`), not every image of its batch.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attempts_alone", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_column("attempts_alone")
