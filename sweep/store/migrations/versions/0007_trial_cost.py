"""A trial's cost: device-seconds, tokens trained and training FLOPs, written when it finishes.

Rows written before stay NULL; `sweep.store.read_trials` computes them on read from the
trial's own timings, resources and metrics (`sweep.store.cost`).

Revision ID: 0007_trial_cost
Revises: 0004 (the head: 0004 was re-chained after 0006_step_metrics)
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_trial_cost"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("trial", sa.Column("device_seconds", sa.Double(), nullable=True))
    op.add_column(
        "trial",
        sa.Column(
            "tokens_trained", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
    )
    op.add_column("trial", sa.Column("train_flops", sa.Double(), nullable=True))


def downgrade() -> None:
    # SQLite >= 3.35 drops columns in place (no table rebuild, so no cascades fire)
    op.drop_column("trial", "train_flops")
    op.drop_column("trial", "tokens_trained")
    op.drop_column("trial", "device_seconds")
