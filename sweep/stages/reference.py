"""reference: the best teacher config trained on a multiple of the data (the paper's 10x model).

Its seeds are the repeats' seeds, so each reference trial pairs with a repeat by seed.
"""

from __future__ import annotations

from sweep.config import ReferenceStage
from sweep.errors import SweepError
from sweep.runner import StageSpec
from sweep.search import PlannedTrial
from sweep.stages.context import PlanContext, alpha1
from sweep.store import TrialRole
from trainers.config import DataConfig


def plan(ctx: PlanContext, name: str, stage: ReferenceStage) -> StageSpec:
    assert stage.teachers is not None  # the loader names it
    plans = [
        PlannedTrial(alpha1(best.params), seed, TrialRole.TEACHER, best.id)
        for seed in ctx.repeat_seeds(ctx.seed_count(name, stage))
        for best in ctx.picks(name, stage.teachers, 1)
    ]
    return ctx.fixed_spec(name, stage, plans, data=scaled_data(ctx, name, stage))


def scaled_data(ctx: PlanContext, name: str, stage: ReferenceStage) -> DataConfig:
    """The study's data with data_scale x its max_train_tokens; refused if the corpus is short."""
    data = ctx.config.data
    assert data.max_train_tokens is not None  # the loader checks it
    wanted = data.max_train_tokens * stage.data_scale
    scaled = data.model_copy(update={"max_train_tokens": wanted})
    have = ctx.data_tokens(data.model_copy(update={"max_train_tokens": None}))
    if have < wanted:
        raise SweepError(
            f"stages.{name}.data_scale: {stage.data_scale} x data.max_train_tokens = {wanted} "
            f"training tokens, but {data.corpus} holds {have}; lower data_scale or "
            "data.max_train_tokens"
        )
    return scaled


def check(ctx: PlanContext, name: str, stage: ReferenceStage) -> None:
    """Before any stage runs: the corpus holds the scaled data."""
    scaled_data(ctx, name, stage)
