"""Declared stages: one module per StageKind, one registry (PLANNERS) from kind to planner.

A planner turns a declared stage into what runs: a StageSpec of trials for Ray Tune and
Optuna, or, for an ensemble, the selection to record. Adding a kind is a config model in
sweep.config, a module here and one PLANNERS entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweep.config import StageKind
from sweep.runner import StageSpec
from sweep.stages import baselines, ensemble, reference, repeats, students, teachers
from sweep.stages.context import REPEAT_SEED_OFFSET, EnsembleSelection, PlanContext

__all__ = [
    "PLANNERS",
    "REPEAT_SEED_OFFSET",
    "EnsembleSelection",
    "PlanContext",
    "StagePlanner",
]


@dataclass(frozen=True)
class StagePlanner:
    """How a kind of stage is planned, and what it checks before the study starts."""

    plan: Callable[[PlanContext, str, Any], StageSpec | EnsembleSelection]
    check: Callable[[PlanContext, str, Any], None] | None = None


PLANNERS: dict[StageKind, StagePlanner] = {
    StageKind.TEACHERS: StagePlanner(teachers.plan),
    StageKind.ENSEMBLE: StagePlanner(ensemble.plan),
    StageKind.STUDENTS: StagePlanner(students.plan),
    StageKind.BASELINES: StagePlanner(baselines.plan),
    StageKind.REPEATS: StagePlanner(repeats.plan),
    StageKind.REFERENCE: StagePlanner(reference.plan, check=reference.check),
}
