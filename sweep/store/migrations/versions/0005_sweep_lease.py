"""The sweep lease (one driver per sweep) and the reason a sweep FAILED.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweep_lease",
        sa.Column("sweep_name", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("pid_started", sa.Double(), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sweep_name", name="pk_sweep_lease"),
    )
    op.add_column("sweep", sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    # SQLite drops a column only by rebuilding the table (which would fire the cascades)
    if op.get_bind().dialect.name != "sqlite":
        op.drop_column("sweep", "error")
    op.drop_table("sweep_lease")
