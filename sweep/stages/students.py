"""students: the distillation sweep, sampled by Optuna, every trial from one named ensemble."""

from __future__ import annotations

from sweep.config import StudentsStage
from sweep.runner import StageSpec
from sweep.stages.context import PlanContext
from sweep.store import TrialRole


def plan(ctx: PlanContext, name: str, stage: StudentsStage) -> StageSpec:
    assert stage.ensemble is not None  # the loader names it
    teachers = ctx.ensemble(stage.ensemble)
    context = ctx.trial_context(name, stage.epochs, alpha1=False, teachers=teachers)
    return StageSpec(
        sweep=ctx.config.name,
        name=name,
        seed=ctx.seed(name),
        total=stage.trials,
        role=TrialRole.STUDENT,
        context=context,
        resources=stage.resources,
        max_failures=stage.max_failures,
        scheduler=stage.scheduler,
        space=dict(stage.space),
        teacher_ids=tuple(i for i, _ in teachers),
        ensemble_stage=stage.ensemble,
        data_tokens=ctx.data_tokens(context.recipe.data),
    )
