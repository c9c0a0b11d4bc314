"""Plain rows the Store hands out (no ORM objects escape a session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["ArtifactRow", "EnsembleMember", "EvaluationRow", "StageRow", "SweepRow", "TrialRow"]


@dataclass(frozen=True, slots=True)
class EvaluationRow:
    """One evaluation result, e.g. EvaluationRow("blimp", "anaphor_gender_agreement",
    "anaphor_agreement", "accuracy", 0.81, 1000)."""

    suite: str
    task: str
    group: str | None
    metric: str
    value: float | None
    n: int | None = None


@dataclass(frozen=True, slots=True)
class SweepRow:
    id: int
    name: str
    status: str
    config: dict[str, Any]
    config_hash: str
    code_version: str
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class StageRow:
    id: int
    sweep_id: int
    name: str
    status: str
    optuna_study: str | None
    objective_name: str | None
    direction: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TrialRow:
    id: int
    stage_id: int
    number: int
    role: str
    status: str
    params: dict[str, Any]
    seed: int
    objective: float | None
    checkpoint_uri: str | None
    tune_trial_id: str | None
    optuna_trial_number: int | None
    source_trial_id: int | None
    error: str | None
    node: str | None
    resources: dict[str, Any] | None
    started_at: datetime | None
    ended_at: datetime | None
    config: dict[str, Any] | None
    teacher_ids: tuple[int, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class EnsembleMember:
    trial_id: int
    rank: int
    value: float | None
    checkpoint_uri: str | None
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    id: int
    trial_id: int
    uri: str
    kind: str
    iteration: int | None
    size_bytes: int | None
    sha256: str | None
    created_at: datetime
