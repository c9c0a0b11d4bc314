"""What distillation costs: compute per stage, the per-token overhead of K teachers, and each
search's chosen quality against the compute the search spent.

The trial columns come from the store (`sweep.store.cost`: device-seconds = wall time x the
GPUs a trial held, else its CPU cores; tokens trained; training FLOPs = 6 N per trained token
+ 2 N_teacher per trained token per teacher + 2 N per evaluated token). A K-teacher student's
step ideally costs (3 + K) / 3 of a step without teachers (same-size teachers; FLOPs only).
The measured overhead reads each trial's own training throughput (tokens per second over its
training steps, evaluation excluded), so start-up, BLiMP and data loading do not dilute it;
the whole-trial device-seconds per token are shown beside it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.headline import best_trial, reported_metrics
from analysis.load import Frames, finished

__all__ = [
    "Overhead",
    "SearchCost",
    "device_unit",
    "flop_ideal",
    "overheads",
    "search_costs",
    "stage_costs",
]

THROUGHPUT = "tokens_per_s"
"""The trial's training tokens per second over its last epoch's steps (trainers.recipe)."""


def flop_ideal(k: float, k_ref: float = 0.0) -> float:
    """FLOPs of a K-teacher step over a K_ref-teacher step, teachers the student's size."""
    return (3.0 + k) / (3.0 + k_ref)


def _column(trials: pd.DataFrame, name: str) -> pd.Series:
    if name not in trials.columns:
        return pd.Series(np.nan, index=trials.index, dtype=float)
    return pd.to_numeric(trials[name], errors="coerce")


def device_unit(frames: Frames) -> str:
    """GPU-hours when any stage's trials held GPUs, else CPU core-hours."""
    stages = frames.config.get("stages") if isinstance(frames.config, dict) else None
    entries = stages.values() if isinstance(stages, dict) else stages or []
    for entry in entries:
        resources = entry.get("resources") if isinstance(entry, dict) else None
        if isinstance(resources, dict) and float(resources.get("gpu") or 0) > 0:
            return "GPU-hours"
    return "CPU core-hours"


def stage_costs(frames: Frames) -> pd.DataFrame:
    """Per stage, in the order the stages ran: trials, device-hours, tokens trained, training
    FLOPs (all statuses: a pruned or failed trial's compute was spent too)."""
    t = frames.trials
    rows = []
    for stage in t["stage"].unique():
        s = t[t["stage"] == stage]
        seconds = _column(s, "device_seconds")
        flops = _column(s, "train_flops")
        rows.append(
            {
                "stage": str(stage),
                "kind": str(s["stage_kind"].iloc[0]),
                "trials": len(s),
                "device_hours": float(seconds.sum()) / 3600 if seconds.notna().any() else None,
                "tokens_trained": float(_column(s, "tokens_trained").sum()),
                "train_flops": float(flops.sum()) if flops.notna().any() else None,
                "unknown": int(flops.isna().sum()),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Overhead:
    """One distillation setting (K teachers; 0 = none) against another, per trained token."""

    label: str
    k: int
    k_ref: int
    trials: int
    trials_ref: int
    measured: float | None
    """Training-step time per token, K over K_ref (median throughputs)."""
    whole_trial: float | None
    """Device-seconds per trained token of whole trials (start-up and evaluation included)."""
    flops: float | None
    """Counted training FLOPs per trained token, K over K_ref (evaluation included)."""
    ideal: float


def _groups(frames: Frames) -> dict[int, pd.DataFrame]:
    """Completed trials by teachers run per token. No distillation (0): the alpha = 1 controls
    of the student configs where they ran (same batch sizes and model as the students), else
    every trial without teachers (teachers, reference)."""
    done = finished(frames.trials)
    k = pd.to_numeric(done["ensemble_size"], errors="coerce").fillna(0).astype(int)
    groups = {int(v): done[k == v] for v in sorted(k.unique())}
    if 0 in groups and (groups[0]["role"] == "baseline").any():
        groups[0] = groups[0][groups[0]["role"] == "baseline"]
    return groups


def _median_ratio(a: pd.Series, b: pd.Series) -> float | None:
    a, b = a.dropna(), b.dropna()
    if a.empty or b.empty or float(b.median()) == 0:
        return None
    return float(a.median() / b.median())


def _per_token(trials: pd.DataFrame, column: str) -> pd.Series:
    return _column(trials, column) / _column(trials, "tokens_trained")


def _same_size(reference: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """The reference trials of the model size `like` trains (all where sizes are unknown):
    a per-token ratio across model sizes would measure the size, not the teachers."""
    sizes = _column(like, "num_parameters").dropna()
    if sizes.empty:
        return reference
    return reference[_column(reference, "num_parameters") == sizes.median()]


def overheads(frames: Frames) -> list[Overhead]:
    """Each K > 0 over no distillation, and each K over the next smaller K (K=2 over K=1)."""
    groups = _groups(frames)
    out = []
    ks = sorted(groups)
    pairs = [(k, 0) for k in ks if k > 0 and 0 in groups]
    pairs += [(k, ref) for ref, k in itertools.pairwise(ks) if ref > 0]
    for k, ref in pairs:
        a, b = groups[k], _same_size(groups[ref], groups[k])
        out.append(
            Overhead(
                label=f"K={k} over " + ("no distillation" if ref == 0 else f"K={ref}"),
                k=k,
                k_ref=ref,
                trials=len(a),
                trials_ref=len(b),
                # time per token is 1 / throughput: K's time over K_ref's
                measured=_median_ratio(_column(b, THROUGHPUT), _column(a, THROUGHPUT)),
                whole_trial=_median_ratio(
                    _per_token(a, "device_seconds"), _per_token(b, "device_seconds")
                ),
                flops=_median_ratio(_per_token(a, "train_flops"), _per_token(b, "train_flops")),
                ideal=flop_ideal(k, ref),
            )
        )
    return out


@dataclass(frozen=True)
class SearchCost:
    """A search (teachers or students stage): its compute and its dev-chosen config's scores."""

    stage: str
    kind: str
    ensemble_size: int
    train_flops: float | None
    device_hours: float | None
    with_teachers_flops: float | None
    """A students search plus the teachers search its ensemble came from (None: teachers)."""
    chosen_number: int | None
    scores: dict[str, float | None] = field(default_factory=dict)
    """Held-out metric -> the chosen config's value."""


def search_costs(frames: Frames) -> list[SearchCost]:
    """Every teachers and students search: compute spent, and the chosen config's held-out
    scores (chosen on dev loss, as the sweep chose)."""
    costs = stage_costs(frames).set_index("stage")
    teachers = frames.stages("teachers")
    teacher_flops = (
        float(costs.loc[teachers, "train_flops"].sum())
        if teachers and costs.loc[teachers, "train_flops"].notna().all()
        else None
    )
    out = []
    for kind in ("teachers", "students"):
        for stage in frames.stages(kind):
            best = best_trial(finished(frames.stage(stage)))
            flops = costs.loc[stage, "train_flops"]
            flops = None if flops is None or pd.isna(flops) else float(flops)
            hours = costs.loc[stage, "device_hours"]
            out.append(
                SearchCost(
                    stage=stage,
                    kind=kind,
                    ensemble_size=frames.ensemble_size(stage),
                    train_flops=flops,
                    device_hours=None if hours is None or pd.isna(hours) else float(hours),
                    with_teachers_flops=(
                        flops + teacher_flops
                        if kind == "students" and flops is not None and teacher_flops is not None
                        else None
                    ),
                    chosen_number=None if best is None else int(best["number"]),
                    scores={
                        m: _value(best, m) if best is not None else None
                        for m in reported_metrics(frames)
                    },
                )
            )
    return out


def _value(row: pd.Series, metric: str) -> float | None:
    value = pd.to_numeric(pd.Series([row.get(metric)]), errors="coerce").iloc[0]
    return None if pd.isna(value) else float(value)


def summary(frames: Frames) -> dict[str, Any]:
    """The cost section's numbers (JSON-able once the report converts dataclasses)."""
    return {
        "device_unit": device_unit(frames),
        "stages": stage_costs(frames).to_dict(orient="records"),
        "overheads": overheads(frames),
        "searches": search_costs(frames),
    }
