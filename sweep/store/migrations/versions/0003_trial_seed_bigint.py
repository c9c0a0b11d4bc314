"""trial.seed as a 64-bit integer (seeds may use all 32 unsigned bits).

SQLite's INTEGER already holds 64 bits, and rebuilding `trial` there would fire its
ON DELETE CASCADE foreign keys (see env.py), so only PostgreSQL changes.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("trial", "seed", type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("trial", "seed", type_=sa.Integer(), existing_nullable=False)
