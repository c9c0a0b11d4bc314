"""ensemble: the K best finished teachers of a teachers stage (K = 1 is a single teacher)."""

from __future__ import annotations

from sweep.config import EnsembleStage
from sweep.errors import SweepError
from sweep.stages.context import EnsembleSelection, PlanContext
from sweep.store import TrialRow


def plan(ctx: PlanContext, name: str, stage: EnsembleStage) -> EnsembleSelection:
    assert stage.teachers is not None  # the loader names it
    candidates = [t for t in ctx.best(stage.teachers) if t.checkpoint_uri]
    ranked: list[tuple[TrialRow, float]]
    if stage.metric == "blimp_overall":  # higher is better; trials without a score are left out
        scored = [(t, _final_metric(ctx, t.id, stage.metric)) for t in candidates]
        ranked = sorted(((t, v) for t, v in scored if v is not None), key=lambda tv: -tv[1])
    else:
        ranked = [(t, t.objective or 0.0) for t in candidates]
    if len(ranked) < stage.k:
        raise SweepError(
            f"stages.{name}.k: only {len(ranked)} teacher trials of {stage.teachers!r} finished "
            f"with a checkpoint, {stage.k} needed; lower k, run more teacher trials, or let "
            f"teachers finish (stages.{stage.teachers}.scheduler.type: none)"
        )
    return EnsembleSelection(
        [(t.id, rank, float(v)) for rank, (t, v) in enumerate(ranked[: stage.k], 1)]
    )


def _final_metric(ctx: PlanContext, trial_id: int, metric: str) -> float | None:
    """A metric's value at the trial's last reported epoch."""
    curve = ctx.store.trial_metrics(trial_id)
    return curve[max(curve)].get(metric) if curve else None
