"""Plain rows the Store hands out (no ORM objects escape a session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ArtifactRow",
    "EnsembleMember",
    "EvaluationRow",
    "LeaseRow",
    "StageRow",
    "SweepRow",
    "TrialRow",
]


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
    error: str | None = None
    """Why the sweep FAILED (e.g. it could not start); None otherwise."""


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """Who holds a sweep's lease: the driver running it, and when it last beat."""

    sweep_name: str
    owner: str
    host: str
    pid: int
    pid_started: float | None
    acquired_at: datetime
    heartbeat_at: datetime

    def age_s(self, now: datetime) -> float:
        """Seconds since the holder's last heartbeat."""
        return max(0.0, (now - self.heartbeat_at).total_seconds())

    def describe(self, now: datetime) -> str:
        return f"host {self.host}, pid {self.pid}, last heartbeat {self.age_s(now):.0f} s ago"


@dataclass(frozen=True, slots=True)
class StageRow:
    id: int
    sweep_id: int
    name: str
    kind: str | None
    inputs: dict[str, Any] | None
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
    data_tokens: int | None = None
    ensemble_stage: str | None = None
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
