"""students: the distillation sweep, sampled by Optuna, every trial from one named ensemble."""

from __future__ import annotations

from sweep.config import StudentsStage
from sweep.runner import StageSpec
from sweep.stages.context import PlanContext
from sweep.store import TrialRole


def plan(ctx: PlanContext, name: str, stage: StudentsStage) -> StageSpec:
    assert stage.ensemble is not None  # the loader names it
    teachers = ctx.ensemble(stage.ensemble)
    return ctx.sampled_spec(
        name, stage, TrialRole.STUDENT, teachers=teachers, ensemble_stage=stage.ensemble
    )
