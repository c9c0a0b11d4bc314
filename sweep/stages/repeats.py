"""repeats: each source stage's best config re-seeded, all with the same seeds.

A teachers source gives teacher repeats; a students source gives student repeats (from
the same ensemble) and, with the same seeds, its alpha = 1 control (role baseline).
"""

from __future__ import annotations

from sweep.config import RepeatsStage, StageKind, StudentsStage
from sweep.runner import StageSpec
from sweep.search import PlannedTrial
from sweep.stages.context import PlanContext, alpha1
from sweep.store import TrialRole


def plan(ctx: PlanContext, name: str, stage: RepeatsStage) -> StageSpec:
    configs: list[PlannedTrial] = []  # one template per config, seed filled below
    for source in stage.sources or []:
        spec = ctx.config.stages[source]
        for best in ctx.picks(name, source, 1):
            if spec.kind == StageKind.TEACHERS:
                configs.append(PlannedTrial(alpha1(best.params), 0, TrialRole.TEACHER, best.id))
                continue
            assert isinstance(spec, StudentsStage) and spec.ensemble is not None
            configs += [
                PlannedTrial(
                    dict(best.params),
                    0,
                    TrialRole.STUDENT,
                    best.id,
                    teachers=ctx.ensemble(spec.ensemble),
                    ensemble_stage=spec.ensemble,
                ),
                PlannedTrial(alpha1(best.params), 0, TrialRole.BASELINE, best.id),
            ]
    # seed-major: more seeds append plans, so the slots that ran keep their meaning
    plans = [
        PlannedTrial(c.params, seed, c.role, c.source_trial_id, c.teachers, c.ensemble_stage)
        for seed in ctx.repeat_seeds(ctx.seed_count(name, stage))
        for c in configs
    ]
    return ctx.fixed_spec(name, stage, plans)
