"""teachers: the no-distillation LM sweep, sampled by Optuna."""

from __future__ import annotations

from sweep.config import TeachersStage
from sweep.runner import StageSpec
from sweep.stages.context import PlanContext
from sweep.store import TrialRole


def plan(ctx: PlanContext, name: str, stage: TeachersStage) -> StageSpec:
    return ctx.sampled_spec(name, stage, TrialRole.TEACHER)
