"""The sweep's results in one SQL database (SQLite by default, PostgreSQL on clusters).

Our tables (sweep, stage, trial, trial_teacher, trial_metric, trial_step_metric,
evaluation, ensemble_member, artifact) share the database with Optuna's study tables, so
`optuna-dashboard URL` shows the studies. Alembic owns the schema (version table `babysweep_alembic_version`).
"""

from sweep.errors import LeaseLost, StoreError
from sweep.store.checkpoints import checkpoint_fingerprint
from sweep.store.connection import mask_url, retry_transient, retry_while_disconnected
from sweep.store.cost import TrialCost, trial_cost
from sweep.store.labels import ensemble_label
from sweep.store.migrate import current_revision, head_revision, upgrade
from sweep.store.models import StageKind, StageStatus, SweepStatus, TrialRole, TrialStatus
from sweep.store.read import (
    read_ensemble,
    read_evaluations,
    read_metrics,
    read_step_metrics,
    read_sweeps,
    read_trials,
)
from sweep.store.rows import (
    ArtifactRow,
    EnsembleMember,
    EvaluationRow,
    LeaseRow,
    StageRow,
    SweepRow,
    TrialRow,
)
from sweep.store.status import render_status
from sweep.store.store import Store

__all__ = [
    "ArtifactRow",
    "EnsembleMember",
    "EvaluationRow",
    "LeaseLost",
    "LeaseRow",
    "StageKind",
    "StageRow",
    "StageStatus",
    "Store",
    "StoreError",
    "SweepRow",
    "SweepStatus",
    "TrialCost",
    "TrialRole",
    "TrialRow",
    "TrialStatus",
    "checkpoint_fingerprint",
    "current_revision",
    "ensemble_label",
    "head_revision",
    "mask_url",
    "read_ensemble",
    "read_evaluations",
    "read_metrics",
    "read_step_metrics",
    "read_sweeps",
    "read_trials",
    "render_status",
    "retry_transient",
    "retry_while_disconnected",
    "trial_cost",
    "upgrade",
]
