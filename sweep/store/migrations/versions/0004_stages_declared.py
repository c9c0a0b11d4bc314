"""Declared stages: a stage's kind and inputs; a trial's data size and the ensemble it used.

Stages written before were named after their kind, so their kind is backfilled from the name.

Revision ID: 0004
Revises: 0006_step_metrics (0005_sweep_lease and 0006_step_metrics landed first; this
revision was re-chained after them)
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0006_step_metrics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_KINDS = ("teachers", "ensemble", "students", "baselines", "repeats")


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.add_column("stage", sa.Column("kind", sa.String(), nullable=True))
    op.add_column("stage", sa.Column("inputs", json, nullable=True))
    op.add_column(
        "trial",
        sa.Column(
            "data_tokens", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
    )
    op.add_column("trial", sa.Column("ensemble_stage", sa.String(), nullable=True))
    stage = sa.table("stage", sa.column("name", sa.String()), sa.column("kind", sa.String()))
    op.execute(stage.update().where(stage.c.name.in_(_OLD_KINDS)).values(kind=stage.c.name))


def downgrade() -> None:
    # SQLite >= 3.35 drops columns in place (no table rebuild, so no cascades fire)
    op.drop_column("trial", "ensemble_stage")
    op.drop_column("trial", "data_tokens")
    op.drop_column("stage", "inputs")
    op.drop_column("stage", "kind")
