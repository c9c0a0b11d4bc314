"""The store's tables as SQLAlchemy 2.0 typed models. Alembic (migrations/) owns the schema."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Artifact",
    "Base",
    "EnsembleMemberModel",
    "Evaluation",
    "JSONDoc",
    "StageKind",
    "StageModel",
    "StageStatus",
    "Sweep",
    "SweepLease",
    "SweepStatus",
    "Trial",
    "TrialMetric",
    "TrialRole",
    "TrialStatus",
    "TrialTeacher",
    "UTCDateTime",
    "utcnow",
]


class TrialStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAILED = "FAILED"


class StageKind(StrEnum):
    """What a declared stage does (sweep.yaml `kind:`); sweep.stages maps each to its planner."""

    TEACHERS = "teachers"
    ENSEMBLE = "ensemble"
    STUDENTS = "students"
    BASELINES = "baselines"
    REPEATS = "repeats"
    REFERENCE = "reference"


class TrialRole(StrEnum):
    """What a trial's model is: a teacher, a distilled student, or a student config at alpha=1."""

    TEACHER = "teacher"
    STUDENT = "student"
    BASELINE = "baseline"


class SweepStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"
    PARTIAL = "PARTIAL"  # some stages ran (`sweep run --stage`), others have not yet


class StageStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    INTERRUPTED = "INTERRUPTED"  # stopped by Ctrl-C; `sweep run --resume` continues it


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC on both backends (SQLite keeps no zone: store naive UTC, read back aware).

    A naive datetime handed in is taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite
JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads it as a class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDoc,
        float: sa.Double(),
    }


class Sweep(Base):
    """One run of sweep.yaml: its resolved config (and hash) and the code that ran it."""

    __tablename__ = "sweep"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(), unique=True)
    config: Mapped[dict[str, Any]]
    config_hash: Mapped[str] = mapped_column(sa.String())
    status: Mapped[str] = mapped_column(sa.String())
    code_version: Mapped[str] = mapped_column(sa.String())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]
    # why the sweep FAILED (revision 0005), e.g. a run that could not start
    error: Mapped[str | None] = mapped_column(sa.Text())


class SweepLease(Base):
    """The one driver running a sweep (revision 0005): taken in one transaction, renewed by
    its heartbeat, deleted when it ends. Keyed by name: taken before the sweep row exists."""

    __tablename__ = "sweep_lease"

    sweep_name: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String())
    host: Mapped[str] = mapped_column(sa.String())
    pid: Mapped[int]
    # the holder's process start time, so a reused pid is not taken for the holder
    pid_started: Mapped[float | None]
    acquired_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]


class StageModel(Base):
    """A declared stage of a sweep (name, kind, inputs) and its Optuna study."""

    __tablename__ = "stage"
    __table_args__ = (sa.UniqueConstraint("sweep_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(sa.ForeignKey("sweep.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.String())
    # StageKind (revision 0004); NULL on stages written before, whose name was their kind
    kind: Mapped[str | None] = mapped_column(sa.String())
    # the declared stages it reads, e.g. {"ensemble": "ensemble_k2"} (revision 0004)
    inputs: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(sa.String())
    optuna_study: Mapped[str | None] = mapped_column(sa.String())
    # what a trial's objective is and which way is better, so `sweep status` can pick the best
    objective_name: Mapped[str | None] = mapped_column(sa.String())
    direction: Mapped[str] = mapped_column(sa.String())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Trial(Base):
    """One Tune trial = one Optuna trial of a stage; natural key (stage_id, number)."""

    __tablename__ = "trial"
    __table_args__ = (sa.UniqueConstraint("stage_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stage_id: Mapped[int] = mapped_column(sa.ForeignKey("stage.id", ondelete="CASCADE"))
    number: Mapped[int]
    role: Mapped[str] = mapped_column(sa.String())
    status: Mapped[str] = mapped_column(sa.String())
    params: Mapped[dict[str, Any]]
    config: Mapped[dict[str, Any] | None]
    # seeds may use all 32 unsigned bits; SQLite's INTEGER is 64-bit already (revision 0003)
    seed: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"))
    objective: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(sa.Text())
    tune_trial_id: Mapped[str | None] = mapped_column(sa.String())
    optuna_trial_number: Mapped[int | None]
    resources: Mapped[dict[str, Any] | None]
    node: Mapped[str | None] = mapped_column(sa.String())
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    checkpoint_uri: Mapped[str | None] = mapped_column(sa.Text())
    # the trial whose config this one repeats or mirrors (repeats, baselines)
    source_trial_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("trial.id", ondelete="SET NULL")
    )
    # training tokens per epoch (a reference stage sees a multiple); revision 0004
    data_tokens: Mapped[int | None] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    )
    # the ensemble stage a distilled trial's teachers came from (its name); revision 0004
    ensemble_stage: Mapped[str | None] = mapped_column(sa.String())
    # what the trial cost (revision 0007; sweep.store.cost): device-seconds (wall time x the
    # GPUs it held, else its CPUs), tokens it trained on, training FLOPs (6N + 2N per teacher
    # per trained token, plus 2N per evaluated token); NULL on older rows, computed on read
    device_seconds: Mapped[float | None]
    tokens_trained: Mapped[int | None] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    )
    train_flops: Mapped[float | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TrialTeacher(Base):
    """A student trial distilled from these teacher trials (in ensemble order)."""

    __tablename__ = "trial_teacher"

    student_trial_id: Mapped[int] = mapped_column(
        sa.ForeignKey("trial.id", ondelete="CASCADE"), primary_key=True
    )
    teacher_trial_id: Mapped[int] = mapped_column(
        sa.ForeignKey("trial.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int]


class TrialMetric(Base):
    """The learning curves: (trial, iteration, name) -> value; NULL for a non-finite value."""

    __tablename__ = "trial_metric"

    trial_id: Mapped[int] = mapped_column(
        sa.ForeignKey("trial.id", ondelete="CASCADE"), primary_key=True
    )
    iteration: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    value: Mapped[float | None]


class TrialStepMetric(Base):
    """Curves on the optimizer-step axis: the train loss every `tracking.log_every` steps
    (train_loss_step) and the dev loss at each epoch's end and every `tracking.eval_every`
    steps within it (dev_loss); NULL for a non-finite value."""

    __tablename__ = "trial_step_metric"

    trial_id: Mapped[int] = mapped_column(
        sa.ForeignKey("trial.id", ondelete="CASCADE"), primary_key=True
    )
    step: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(), primary_key=True)
    epoch: Mapped[int]
    value: Mapped[float | None]


class Evaluation(Base):
    """(trial, suite, task, metric) -> value over n items; task_group e.g. a BLiMP phenomenon."""

    __tablename__ = "evaluation"
    __table_args__ = (sa.UniqueConstraint("trial_id", "suite", "task", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(sa.ForeignKey("trial.id", ondelete="CASCADE"))
    suite: Mapped[str] = mapped_column(sa.String())
    task: Mapped[str] = mapped_column(sa.String())
    task_group: Mapped[str | None] = mapped_column(sa.String())
    metric: Mapped[str] = mapped_column(sa.String())
    value: Mapped[float | None]
    n: Mapped[int | None]


class EnsembleMemberModel(Base):
    """The teacher trials the ensemble stage picked, by rank."""

    __tablename__ = "ensemble_member"
    __table_args__ = (sa.UniqueConstraint("stage_id", "rank"),)

    stage_id: Mapped[int] = mapped_column(
        sa.ForeignKey("stage.id", ondelete="CASCADE"), primary_key=True
    )
    trial_id: Mapped[int] = mapped_column(
        sa.ForeignKey("trial.id", ondelete="CASCADE"), primary_key=True
    )
    rank: Mapped[int]
    value: Mapped[float | None]


class Artifact(Base):
    """A file or directory a trial wrote (a checkpoint), with its size and sha256 (revision 0002)."""

    __tablename__ = "artifact"
    __table_args__ = (sa.UniqueConstraint("trial_id", "uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(sa.ForeignKey("trial.id", ondelete="CASCADE"))
    uri: Mapped[str] = mapped_column(sa.Text())
    kind: Mapped[str] = mapped_column(sa.String())
    iteration: Mapped[int | None]
    size_bytes: Mapped[int | None] = mapped_column(sa.BigInteger())
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# revision 0002 also indexes trial status (`sweep status` counts by stage and status)
sa.Index("ix_trial_stage_id_status", Trial.stage_id, Trial.status)
