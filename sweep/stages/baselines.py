"""baselines: each students stage's top configs again at alpha = 1 with no teachers."""

from __future__ import annotations

from sweep.config import BaselinesStage
from sweep.runner import StageSpec
from sweep.search import PlannedTrial
from sweep.stages.context import PlanContext, alpha1
from sweep.store import TrialRole


def plan(ctx: PlanContext, name: str, stage: BaselinesStage) -> StageSpec:
    picks = {source: ctx.picks(name, source, stage.top_n) for source in stage.students or []}
    plans = [
        # rank-major: a larger top_n appends plans, so the slots that ran keep their meaning
        PlannedTrial(alpha1(s.params), s.seed, TrialRole.BASELINE, source_trial_id=s.id)
        for rank in range(stage.top_n)
        for source in stage.students or []
        for s in picks[source][rank : rank + 1]
    ]
    return ctx.fixed_spec(name, stage, plans)
