"""Core tables: sweep, stage, trial, trial_teacher, trial_metric, evaluation, ensemble_member.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sweep",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("config", JSONDoc, nullable=False),
        sa.Column("config_hash", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("code_version", sa.String(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sweep"),
        sa.UniqueConstraint("name", name="uq_sweep_name"),
    )
    op.create_table(
        "stage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sweep_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("optuna_study", sa.String(), nullable=True),
        sa.Column("objective_name", sa.String(), nullable=True),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["sweep_id"], ["sweep.id"], name="fk_stage_sweep_id_sweep", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_stage"),
        sa.UniqueConstraint("sweep_id", "name", name="uq_stage_sweep_id_name"),
    )
    op.create_table(
        "trial",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("params", JSONDoc, nullable=False),
        sa.Column("config", JSONDoc, nullable=True),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("objective", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tune_trial_id", sa.String(), nullable=True),
        sa.Column("optuna_trial_number", sa.Integer(), nullable=True),
        sa.Column("resources", JSONDoc, nullable=True),
        sa.Column("node", sa.String(), nullable=True),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("ended_at", Timestamp, nullable=True),
        sa.Column("checkpoint_uri", sa.Text(), nullable=True),
        sa.Column("source_trial_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["stage.id"], name="fk_trial_stage_id_stage", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["source_trial_id"],
            ["trial.id"],
            name="fk_trial_source_trial_id_trial",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_trial"),
        sa.UniqueConstraint("stage_id", "number", name="uq_trial_stage_id_number"),
    )
    op.create_table(
        "trial_teacher",
        sa.Column("student_trial_id", sa.Integer(), nullable=False),
        sa.Column("teacher_trial_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["student_trial_id"],
            ["trial.id"],
            name="fk_trial_teacher_student_trial_id_trial",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["teacher_trial_id"],
            ["trial.id"],
            name="fk_trial_teacher_teacher_trial_id_trial",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("student_trial_id", "teacher_trial_id", name="pk_trial_teacher"),
    )
    op.create_table(
        "trial_metric",
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("iteration", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trial.id"], name="fk_trial_metric_trial_id_trial", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("trial_id", "iteration", "name", name="pk_trial_metric"),
    )
    op.create_table(
        "evaluation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("suite", sa.String(), nullable=False),
        sa.Column("task", sa.String(), nullable=False),
        sa.Column("task_group", sa.String(), nullable=True),
        sa.Column("metric", sa.String(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trial.id"], name="fk_evaluation_trial_id_trial", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_evaluation"),
        sa.UniqueConstraint(
            "trial_id", "suite", "task", "metric", name="uq_evaluation_trial_id_suite_task_metric"
        ),
    )
    op.create_table(
        "ensemble_member",
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["stage_id"],
            ["stage.id"],
            name="fk_ensemble_member_stage_id_stage",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"],
            ["trial.id"],
            name="fk_ensemble_member_trial_id_trial",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stage_id", "trial_id", name="pk_ensemble_member"),
        sa.UniqueConstraint("stage_id", "rank", name="uq_ensemble_member_stage_id_rank"),
    )


def downgrade() -> None:
    for table in (
        "ensemble_member",
        "evaluation",
        "trial_metric",
        "trial_teacher",
        "trial",
        "stage",
        "sweep",
    ):
        op.drop_table(table)
