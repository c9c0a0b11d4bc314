"""The numbers behind the report's claims, as DataFrames and dataclasses computed from Frames.

Everything here uses COMPLETE trials only: a pruned trial stopped early and a failed one
has no final score, so neither is a draw of "a trained model with this config".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import AVERAGES, HIGHER, METRICS, SELECTION_METRIC, Frames, finished
from analysis.stats import (
    Estimate,
    TestResult,
    benjamini_hochberg,
    fraction_beating,
    iqm_estimate,
    paired_tests,
    probability_of_improvement,
    proportion_test,
    two_sample_tests,
)

__all__ = [
    "BaselinePairs",
    "Comparison",
    "baseline_pairs",
    "best_trial",
    "config_key",
    "headline_table",
    "paradigm_differences",
    "reported_metrics",
    "student_vs_teacher",
    "students_beating_best_teacher",
]


def _metric(trials: pd.DataFrame, metric: str) -> np.ndarray:
    if metric not in trials.columns:
        return np.array([], dtype=float)
    values = pd.to_numeric(trials[metric], errors="coerce").to_numpy(dtype=float)
    return values[~np.isnan(values)]


def reported_metrics(frames: Frames) -> dict[str, bool]:
    """The held-out metrics the report shows (metric -> higher is better).

    BLiMP and test loss; a store written before trials recorded their test loss falls back
    to dev loss, and the report's warning box says those numbers are optimistic.
    """
    done = finished(frames.trials)
    if pd.to_numeric(done.get("test_loss"), errors="coerce").notna().any():
        return dict(METRICS)
    return {"blimp_overall": True, SELECTION_METRIC: False}


def verdict_metrics(frames: Frames) -> dict[str, bool]:
    """reported_metrics plus BabyLM's GLUE and zero-shot averages where finished trials carry
    them: one test per average per comparison. The per-task scores stay descriptive (a Holm
    family growing by a test per task would decide nothing)."""
    done = finished(frames.trials)
    present = {
        m: higher
        for m, higher in AVERAGES.items()
        if m in done and pd.to_numeric(done[m], errors="coerce").notna().any()
    }
    return {**reported_metrics(frames), **present}


def config_key(trials: pd.DataFrame) -> pd.Series:
    """One string per trial naming its hyperparameters (param_* columns), seeds aside."""
    params = sorted(c for c in trials.columns if c.startswith("param_"))
    if not params:
        return pd.Series([""] * len(trials), index=trials.index, dtype=object)

    def key(row: pd.Series) -> str:
        parts = []
        for p in params:
            v = row[p]
            if isinstance(v, float | np.floating) and np.isnan(v):
                continue
            parts.append(f"{p}={float(v):.12g}" if isinstance(v, int | float) else f"{p}={v}")
        return ",".join(parts)

    return trials.apply(key, axis=1).astype(object)


def _seeds(trials: pd.DataFrame) -> list[int]:
    if "seed" not in trials.columns:
        return []
    return sorted({int(s) for s in trials["seed"].dropna()})


def headline_table(frames: Frames) -> pd.DataFrame:
    """Per group: trial counts, configs, seeds; best, mean and IQM (95% CI) per reported metric.

    One row per Frames.groups() entry, in that order. Metric columns are `<metric>_<stat>`
    with stat in best, mean, iqm, iqm_low, iqm_high, n, note; "best" is the held-out value of
    the trial the selection metric (dev loss) picks, never the best held-out value.
    """
    rows: list[dict[str, Any]] = []
    metrics = reported_metrics(frames)
    for key, label in frames.groups():
        group = frames.group(key)
        done = finished(group)
        row: dict[str, Any] = {
            "group": key,
            "label": label,
            "trials": len(done),
            "pruned": int((group["status"] == "PRUNED").sum()),
            "failed": int((group["status"] == "FAILED").sum()),
            "configs": int(config_key(done).nunique()) if len(done) else 0,
            "seeds": _seeds(done),
        }
        # among seed re-runs of one config, "chosen on dev" would pick the luckiest seed
        chosen = None if ":" in key else best_trial(done)  # keys with ":" are seed re-runs
        for metric in metrics:
            v = _metric(done, metric)
            est = iqm_estimate(v)
            value = None if chosen is None else pd.to_numeric(chosen.get(metric), errors="coerce")
            row[f"{metric}_best"] = None if value is None or pd.isna(value) else float(value)
            row[f"{metric}_mean"] = float(v.mean()) if v.size else None
            row[f"{metric}_iqm"] = est.value
            row[f"{metric}_iqm_low"] = est.low
            row[f"{metric}_iqm_high"] = est.high
            row[f"{metric}_n"] = int(v.size)
            row[f"{metric}_note"] = est.note
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class BaselinePairs:
    """Each student trial with a matched alpha=1 control: its value and the control's."""

    table: pd.DataFrame
    """Columns: student_trial, student_number, n_baselines, and per metric
    `<metric>_student`, `<metric>_baseline` (mean over the source's completed baselines)."""


def baseline_pairs(frames: Frames, metrics: dict[str, bool] | None = None) -> BaselinePairs:
    """Pair every completed baseline with the student trial it controls for (source_trial_id).

    A student with several baselines (seeds) is compared with their mean, so each student
    config counts once in the paired test.
    """
    metrics = reported_metrics(frames) if metrics is None else metrics
    columns = ["student_trial", "student_number", "student_stage", "n_baselines"] + [
        f"{m}_{side}" for m in metrics for side in ("student", "baseline")
    ]
    kinds = frames.trials["stage_kind"]
    baselines = finished(frames.trials[kinds == "baselines"])
    students = finished(frames.trials).set_index("trial_id")
    rows = []
    for source, controls in baselines.groupby("source_trial_id", sort=True):
        if source not in students.index:
            continue  # the student it controls for did not complete
        student = students.loc[source]
        row: dict[str, Any] = {
            "student_trial": source,
            "student_number": int(student["number"]),
            "student_stage": str(student["stage"]),
            "n_baselines": len(controls),
        }
        for m in metrics:
            s = pd.to_numeric(pd.Series([student.get(m)]), errors="coerce").iloc[0]
            b = _metric(controls, m)
            row[f"{m}_student"] = float(s)
            row[f"{m}_baseline"] = float(b.mean()) if b.size else float("nan")
        rows.append(row)
    return BaselinePairs(pd.DataFrame(rows, columns=columns))


def trained_epochs(trials: pd.DataFrame) -> list[int]:
    """The epoch counts the completed trials of a pool trained (empty: no per-epoch record)."""
    done = finished(trials)
    return sorted(set(pd.to_numeric(done["epochs_trained"], errors="coerce").dropna().astype(int)))


def same_epochs(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int | None]:
    """The completed trials of both pools that trained for the same number of epochs.

    That number is the most epochs that trials on both sides reached; a trial stopped at
    another length (ASHA, a different epochs setting) is left out of like-for-like comparisons.
    Pools that record their epochs but share no count (teachers 1 epoch, students 2) have no
    like-for-like trials: both come back empty (`epochs_mismatch` says so in words).
    """
    a, b = finished(a), finished(b)
    ea, eb = set(trained_epochs(a)), set(trained_epochs(b))
    common = ea & eb
    if not common:
        if ea and eb:  # nothing alike to compare: refuse rather than compare 1 with 2 epochs
            return a.iloc[0:0], b.iloc[0:0], None
        return a, b, None  # no per-epoch record (a hand-made store): take them as they are
    e = max(common)
    return a[a["epochs_trained"] == e], b[b["epochs_trained"] == e], e


def epochs_mismatch(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str]) -> str | None:
    """Why two pools have no like-for-like trials (no epoch count in common), or None."""
    ea, eb = trained_epochs(a), trained_epochs(b)
    if not ea or not eb or set(ea) & set(eb):
        return None
    return (
        f"the completed trials of {names[0]} trained {_counts(ea)} and those of {names[1]} "
        f"{_counts(eb)}: no epoch count in common, so no like-for-like comparison of the two "
        "searches exists"
    )


def _counts(epochs: list[int]) -> str:
    text = " or ".join(str(e) for e in epochs)
    return f"{text} epoch" + ("" if epochs == [1] else "s")


@dataclass(frozen=True)
class Comparison:
    """Descriptive student-against-other evidence (the verdicts are in analysis.verdict)."""

    improvement: list[dict[str, Any]]
    """Rows: scope, metric, estimate (Estimate), n_student, n_teacher."""
    tests: list[TestResult]
    """Descriptive tests, each with its minimum attainable p at its n (outside the family)."""
    pairs: BaselinePairs
    notes: list[str] = field(default_factory=list)


def student_vs_teacher(frames: Frames) -> Comparison:
    """P(student better) over seeds and over whole sweeps; Welch, Mann-Whitney, paired tests.

    Every students stage against the (first) teachers stage. The seed comparison uses the
    repeats only (the original trial of a repeated config was selected as the best, so
    counting it would favour its side); the sweep comparison only trials that trained for
    the same number of epochs. None of these tests decides a verdict: they are listed with
    the smallest p they could reach at their n.
    """
    metrics = reported_metrics(frames)
    teachers = frames.stages("teachers")
    improvement: list[dict[str, Any]] = []
    tests: list[TestResult] = []
    notes: list[str] = []
    t_stage = teachers[0] if teachers else None
    rep_t = _repeats_of(frames, t_stage, "teacher")
    for s_stage in frames.stages("students"):
        rep_s = _repeats_of(frames, s_stage, "student")
        pool_s, pool_t, epochs = same_epochs(
            frames.stage(s_stage), frames.stage(t_stage) if t_stage else frames.stage("")
        )
        scope_sweep = "completed trials of the two sweeps" + (
            f" that trained {epochs} epoch(s)" if epochs is not None else ""
        )
        for scope, s_rows, t_rows in (
            (f"seed repeats of the chosen configs ({s_stage})", rep_s, rep_t),
            (f"{scope_sweep} ({s_stage})", pool_s, pool_t),
        ):
            for metric, higher in metrics.items():
                s, t = _metric(s_rows, metric), _metric(t_rows, metric)
                improvement.append(
                    {
                        "scope": scope,
                        "metric": metric,
                        "estimate": probability_of_improvement(s, t, higher=higher),
                        "n_student": int(s.size),
                        "n_teacher": int(t.size),
                    }
                )
        for metric, higher in metrics.items():
            tests += two_sample_tests(
                _metric(rep_s, metric),
                _metric(rep_t, metric),
                metric=metric,
                comparison=f"{s_stage} repeats vs teacher repeats (unpaired)",
                higher=higher,
            )
        for role, rows in (("teacher", rep_t), ("student", rep_s)):
            n_configs = config_key(rows).nunique() if len(rows) else 0
            if n_configs > 1:
                notes.append(f"{role} repeats pool {n_configs} configs")
    pairs = baseline_pairs(frames, metrics)
    for metric in metrics:
        tests += paired_tests(
            pairs.table[f"{metric}_student"].to_numpy(dtype=float),
            pairs.table[f"{metric}_baseline"].to_numpy(dtype=float),
            metric=metric,
            comparison="student vs its matched alpha=1 baseline (one pair per config)",
        )
    return Comparison(improvement, tests, pairs, sorted(set(notes)))


def _repeats_of(frames: Frames, source: str | None, role: str) -> pd.DataFrame:
    """Completed seed re-runs (repeats stages) of one source stage's chosen config."""
    if source is None:
        return frames.trials.iloc[0:0]
    t = frames.trials
    rows = t[(t["stage_kind"] == "repeats") & (t["role"] == role) & (t["source_stage"] == source)]
    return finished(rows)


def best_trial(trials: pd.DataFrame, metric: str = SELECTION_METRIC) -> pd.Series | None:
    """The completed trial with the best value of `metric` (ties: the lowest trial number)."""
    done = finished(trials)
    if metric not in done.columns:
        return None
    done = done[pd.to_numeric(done[metric], errors="coerce").notna()]
    if done.empty:
        return None
    ascending = not HIGHER.get(metric, False)
    ordered = done.sort_values([metric, "number"], ascending=[ascending, True])
    return ordered.iloc[0]


def students_beating_best_teacher(frames: Frames) -> dict[str, Any]:
    """Per metric: how many student trials beat the teacher the selection metric picked.

    The teacher is chosen on dev loss and both sides are read on the held-out metric; only
    trials that trained the same number of epochs count.
    """
    teachers = frames.stages("teachers")
    students = frames.stages("students")
    out: dict[str, Any] = {}
    t_pool = frames.stage(teachers[0]) if teachers else frames.trials.iloc[0:0]
    s_pool = frames.stage(students[0]) if students else frames.trials.iloc[0:0]
    s_done, t_done, _ = same_epochs(s_pool, t_pool)
    chosen = best_trial(t_done)
    for metric, higher in reported_metrics(frames).items():
        s = _metric(s_done, metric)
        value = None if chosen is None else pd.to_numeric(chosen.get(metric), errors="coerce")
        if value is None or pd.isna(value) or s.size == 0:
            out[metric] = {
                "wins": 0,
                "n": int(s.size),
                "best_teacher": None,
                "estimate": Estimate(None, note="a side has no completed trials"),
            }
            continue
        wins, n, est = fraction_beating(s, float(value), higher=higher)
        out[metric] = {"wins": wins, "n": n, "best_teacher": float(value), "estimate": est}
    return out


def paradigm_differences(frames: Frames) -> tuple[pd.DataFrame, dict[str, Any]]:
    """BLiMP accuracy of the best student minus the best teacher, per paradigm and per group.

    "Best" is by dev loss, the sweep's own selection metric, so the paradigms are not
    used to pick the models they then compare. Fisher exact p per row, Benjamini-Hochberg
    q across paradigms and separately across groups. Returns (table, which trials).
    """
    columns = [
        "level",
        "group",
        "task",
        "student",
        "teacher",
        "difference",
        "n_student",
        "n_teacher",
        "p",
        "q",
        "significant",
    ]
    s_stages, t_stages = frames.stages("students"), frames.stages("teachers")
    s_best = best_trial(frames.stage(s_stages[-1])) if s_stages else None
    t_best = best_trial(frames.stage(t_stages[0])) if t_stages else None
    chosen: dict[str, Any] = {
        "student": None if s_best is None else s_best["trial_id"],
        "teacher": None if t_best is None else t_best["trial_id"],
        "student_number": None if s_best is None else int(s_best["number"]),
        "teacher_number": None if t_best is None else int(t_best["number"]),
        # the stages they were chosen in: the last students stage (the largest ensemble)
        "student_stage": s_stages[-1] if s_stages else None,
        "teacher_stage": t_stages[0] if t_stages else None,
    }
    ev = frames.evaluations
    if s_best is None or t_best is None or ev.empty:
        return pd.DataFrame(columns=columns), chosen
    blimp = ev[(ev["suite"] == "blimp") & (ev["task"] != "overall")]

    def side(trial_id: Any) -> pd.DataFrame:
        rows = blimp[blimp["trial_id"] == trial_id][["group", "task", "value", "n"]].copy()
        rows["correct"] = rows["value"] * rows["n"]
        return rows

    merged = side(chosen["student"]).merge(
        side(chosen["teacher"]), on=["group", "task"], suffixes=("_s", "_t")
    )
    if merged.empty:
        return pd.DataFrame(columns=columns), chosen
    groups = merged.groupby("group", sort=True)[["correct_s", "n_s", "correct_t", "n_t"]].sum()
    rows: list[dict[str, Any]] = []
    for r in merged.itertuples(index=False):
        rows.append(
            {
                "level": "paradigm",
                "group": r.group,
                "task": r.task,
                "correct_s": r.correct_s,
                "n_student": r.n_s,
                "correct_t": r.correct_t,
                "n_teacher": r.n_t,
            }
        )
    for g, r in groups.iterrows():
        rows.append(
            {
                "level": "group",
                "group": g,
                "task": "(whole group)",
                "correct_s": r["correct_s"],
                "n_student": r["n_s"],
                "correct_t": r["correct_t"],
                "n_teacher": r["n_t"],
            }
        )
    table = pd.DataFrame(rows)
    table["student"] = table["correct_s"] / table["n_student"]
    table["teacher"] = table["correct_t"] / table["n_teacher"]
    table["difference"] = table["student"] - table["teacher"]
    table["p"] = [
        proportion_test(r.correct_s, r.n_student, r.correct_t, r.n_teacher)
        for r in table.itertuples(index=False)
    ]
    table["q"] = np.nan
    for level in ("paradigm", "group"):
        mask = table["level"] == level
        table.loc[mask, "q"] = benjamini_hochberg(table.loc[mask, "p"].tolist())
    table["significant"] = table["q"] < 0.05
    return table[columns].reset_index(drop=True), chosen
