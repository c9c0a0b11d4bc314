"""trial_step_metric: the train loss every log_every optimizer steps, within epochs.

Revision ID: 0006_step_metrics
Revises: 0005
Create Date: 2025-01-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_step_metrics"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trial_step_metric",
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["trial.id"],
            name="fk_trial_step_metric_trial_id_trial",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("trial_id", "step", "name", name="pk_trial_step_metric"),
    )


def downgrade() -> None:
    op.drop_table("trial_step_metric")
