"""teachers: the no-distillation LM sweep, sampled by Optuna."""

from __future__ import annotations

from sweep.config import TeachersStage
from sweep.runner import StageSpec
from sweep.stages.context import PlanContext
from sweep.store import TrialRole


def plan(ctx: PlanContext, name: str, stage: TeachersStage) -> StageSpec:
    context = ctx.trial_context(name, stage.epochs, alpha1=True)
    return StageSpec(
        sweep=ctx.config.name,
        name=name,
        seed=ctx.seed(name),
        total=stage.trials,
        role=TrialRole.TEACHER,
        context=context,
        resources=stage.resources,
        max_failures=stage.max_failures,
        scheduler=stage.scheduler,
        space=dict(stage.space),
        data_tokens=ctx.data_tokens(context.recipe.data),
    )
