"""The comparisons a sweep's verdict can draw, each kind declared once.

A comparison kind says which two sides it sets against each other, how their runs pair, which
guard must agree before a seed-paired difference may become a verdict (and why), and which
metrics it reads. `plan_comparisons` turns the declarations into the comparisons the stages of
one store allow; analysis.verdict decides them, analysis.sections shows them and
analysis.calibration simulates them, all from `COMPARISON_KINDS`.

    >>> [kind.name for kind in COMPARISON_KINDS.values()]
    ['teachers', 'single-teacher', 'baseline', 'reference']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from analysis.load import Frames, finished

__all__ = [
    "COMPARISON_KINDS",
    "MATCHED_BUDGET",
    "ComparisonKind",
    "ComparisonPlan",
    "Guard",
    "StudentSide",
    "plan_comparisons",
]


@dataclass(frozen=True)
class Guard:
    """What must also agree before seed pairs may decide, and why."""

    name: str
    why: str


MATCHED_BUDGET = Guard(
    "matched budget of the two searches",
    "each side's config was chosen from a search, and seed pairs compare one chosen config per "
    "side: on their own they cannot tell the effect of distillation from the luck of which "
    "config each search happened to find, so the two searches must also differ at matched "
    "budget (expected best of k trials, permutation test)",
)


@dataclass(frozen=True)
class StudentSide:
    """The student stage a comparison starts from, as the planners see it."""

    stage: str
    ensemble_size: int
    repeats: pd.DataFrame
    """Finished seed repeats of the stage's chosen config."""

    @property
    def who(self) -> str:
        if self.ensemble_size > 1:
            return f"ensemble student ({self.stage}, {self.ensemble_size} teachers)"
        return f"student ({self.stage})"


@dataclass
class ComparisonPlan:
    """One comparison of one store: its declared kind and the rows on each side."""

    key: str
    label: str
    kind: ComparisonKind
    student: pd.DataFrame
    other: pd.DataFrame
    pairing: str
    """"seed", or "source trial" (an old store's baselines, paired by the trial they re-ran)."""
    pools: tuple[str, str] | None
    """The two searches the guard compares (student stage first); None: no guard applies."""
    missing: str | None = None


Planner = Callable[[Frames, StudentSide], list[ComparisonPlan]]


@dataclass(frozen=True)
class ComparisonKind:
    """A kind of comparison, declared once."""

    name: str
    other_side: str
    """What the student is set against, in words."""
    pairing: str
    """How the two sides' runs pair."""
    guard: Guard | None
    """What else must agree before a verdict; None: the seed pairs decide alone."""
    no_guard_why: str | None
    """Why no guard applies (None where one does)."""
    metrics: str
    """Which metrics the comparison reads."""
    plan: Planner


HELD_OUT = "the held-out metrics of the store (test loss and BLiMP; dev loss only if no test loss)"


def _repeats(frames: Frames, source: str, role: str) -> pd.DataFrame:
    t = frames.trials
    mask = (t["stage_kind"] == "repeats") & (t["role"] == role) & (t["source_stage"] == source)
    return finished(t[mask])


def _vs_teachers(frames: Frames, s: StudentSide) -> list[ComparisonPlan]:
    kind = COMPARISON_KINDS["teachers"]
    return [
        ComparisonPlan(
            f"{s.stage} vs {teacher}",
            f"{s.who} vs teachers ({teacher})",
            kind,
            s.repeats,
            _repeats(frames, teacher, "teacher"),
            "seed",
            (s.stage, teacher),
        )
        for teacher in frames.stages("teachers")
    ]


def _vs_single_teacher(frames: Frames, s: StudentSide) -> list[ComparisonPlan]:
    if s.ensemble_size <= 1:
        return []
    kind = COMPARISON_KINDS["single-teacher"]
    singles = [x for x in frames.stages("students") if frames.ensemble_size(x) == 1]
    return [
        ComparisonPlan(
            f"{s.stage} vs {single}",
            f"{s.who} vs single-teacher student ({single})",
            kind,
            s.repeats,
            _repeats(frames, single, "student"),
            "seed",
            (s.stage, single),
        )
        for single in singles
    ]


def _vs_baseline(frames: Frames, s: StudentSide) -> list[ComparisonPlan]:
    kind = COMPARISON_KINDS["baseline"]
    key, label = f"{s.stage} vs alpha=1", f"{s.who} vs its alpha=1 baseline"
    baseline = _repeats(frames, s.stage, "baseline")
    if len(baseline):
        return [ComparisonPlan(key, label, kind, s.repeats, baseline, "seed", None)]
    # an old store: the baselines stage re-ran student trials with alpha = 1
    t = frames.trials
    students_done = finished(frames.stage(s.stage))
    controls = finished(t[(t["stage_kind"] == "baselines")])
    controls = controls[controls["source_trial_id"].isin(students_done["trial_id"])]
    if not len(controls):
        return []
    sources = (
        students_done.set_index("trial_id").loc[controls["source_trial_id"].unique()].reset_index()
    )
    return [ComparisonPlan(key, label, kind, sources, controls, "source trial", None)]


def _vs_reference(frames: Frames, s: StudentSide) -> list[ComparisonPlan]:
    t = frames.trials
    reference = finished(t[t["stage_kind"] == "reference"])
    if not len(reference):
        return []
    kind = COMPARISON_KINDS["reference"]
    teachers = frames.stages("teachers")
    sources = [str(x) for x in reference["source_stage"].dropna().unique()]
    pool = sources[0] if sources else (teachers[0] if teachers else None)
    return [
        ComparisonPlan(
            f"{s.stage} vs reference",
            f"{s.who} vs the data-scale reference",
            kind,
            s.repeats,
            reference,
            "seed",
            (s.stage, pool) if pool and kind.guard is not None else None,
        )
    ]


COMPARISON_KINDS: dict[str, ComparisonKind] = {
    k.name: k
    for k in (
        ComparisonKind(
            "teachers",
            "the teachers it distilled from: the teachers search's chosen config",
            "by seed: both chosen configs re-run on the same seeds (repeats stage)",
            MATCHED_BUDGET,
            None,
            HELD_OUT,
            _vs_teachers,
        ),
        ComparisonKind(
            "single-teacher",
            "a student distilled from one teacher: that students search's chosen config",
            "by seed: both chosen configs re-run on the same seeds (repeats stage)",
            MATCHED_BUDGET,
            None,
            HELD_OUT,
            _vs_single_teacher,
        ),
        ComparisonKind(
            "baseline",
            "the same student config trained with alpha = 1 (no teachers)",
            "by seed (repeats stage); an old store's baselines by the student trial they re-ran",
            None,
            "both sides share one config, so no search luck separates them: the pairs "
            "isolate distillation itself",
            HELD_OUT,
            _vs_baseline,
        ),
        ComparisonKind(
            "reference",
            "the data-scale reference: the best teacher config re-trained on N x the data",
            "by seed: the reference stage re-trains on the repeats' seeds",
            None,
            "the reference is one fixed config (the teachers' chosen config re-trained on N x "
            "the data), not a search: a matched-budget guard compares a search with a search and "
            "would say nothing about it, so the seed pairs decide (the claim is about the "
            "student's chosen config against that one model)",
            HELD_OUT,
            _vs_reference,
        ),
    )
}
"""Every comparison kind, in the order the report lists them for each student stage."""


NO_REPEATS = (
    "no seed repeats of {side} (the repeats stage has not re-run its config), so there is no "
    "paired evidence; the sections below describe the sweeps"
)


def plan_comparisons(frames: Frames) -> list[ComparisonPlan]:
    """Every comparison the stages present allow, student side first."""
    plans: list[ComparisonPlan] = []
    for stage in frames.stages("students"):
        side = StudentSide(stage, frames.ensemble_size(stage), _repeats(frames, stage, "student"))
        for kind in COMPARISON_KINDS.values():
            plans.extend(kind.plan(frames, side))
    for plan in plans:
        if plan.student.empty or plan.other.empty:
            side_name = "the student" if plan.student.empty else "the other side"
            plan.missing = NO_REPEATS.format(side=side_name)
    return plans
