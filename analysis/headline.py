"""The numbers behind the report's claims, as DataFrames and dataclasses computed from Frames.

Everything here uses COMPLETE trials only: a pruned trial stopped early and a failed one
has no final score, so neither is a draw of "a trained model with this config".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import GROUPS, METRICS, Frames, finished
from analysis.stats import (
    Estimate,
    TestResult,
    apply_holm,
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
    "student_vs_teacher",
    "students_beating_best_teacher",
]


def _metric(trials: pd.DataFrame, metric: str) -> np.ndarray:
    if metric not in trials.columns:
        return np.array([], dtype=float)
    values = pd.to_numeric(trials[metric], errors="coerce").to_numpy(dtype=float)
    return values[~np.isnan(values)]


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
    """Per group: trial counts, configs, seeds; best, mean and IQM (95% CI) per headline metric.

    One row per GROUPS entry, in that order; groups without trials keep their row with
    trials=0 so a reader sees what is missing. Metric columns are `<metric>_<stat>` with
    stat in best, mean, iqm, iqm_low, iqm_high, n, note.
    """
    rows: list[dict[str, Any]] = []
    for key, label, _ in GROUPS:
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
        for metric, higher in METRICS.items():
            v = _metric(done, metric)
            est = iqm_estimate(v)
            row[f"{metric}_best"] = (float(v.max() if higher else v.min())) if v.size else None
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


def baseline_pairs(frames: Frames) -> BaselinePairs:
    """Pair every completed baseline with the student trial it controls for (source_trial_id).

    A student with several baselines (seeds) is compared with their mean, so each student
    config counts once in the paired test.
    """
    columns = ["student_trial", "student_number", "n_baselines"] + [
        f"{m}_{side}" for m in METRICS for side in ("student", "baseline")
    ]
    baselines = finished(frames.stage("baselines"))
    students = finished(frames.trials).set_index("trial_id")
    rows = []
    for source, controls in baselines.groupby("source_trial_id", sort=True):
        if source not in students.index:
            continue  # the student it controls for did not complete
        student = students.loc[source]
        row: dict[str, Any] = {
            "student_trial": source,
            "student_number": int(student["number"]),
            "n_baselines": len(controls),
        }
        for m in METRICS:
            s = pd.to_numeric(pd.Series([student.get(m)]), errors="coerce").iloc[0]
            b = _metric(controls, m)
            row[f"{m}_student"] = float(s)
            row[f"{m}_baseline"] = float(b.mean()) if b.size else float("nan")
        rows.append(row)
    return BaselinePairs(pd.DataFrame(rows, columns=columns))


@dataclass(frozen=True)
class Comparison:
    """Student against teacher: probabilities of improvement and the Holm-corrected tests."""

    improvement: list[dict[str, Any]]
    """Rows: scope, metric, estimate (Estimate), n_student, n_teacher."""
    tests: list[TestResult]
    """The headline family, Holm-adjusted together."""
    pairs: BaselinePairs
    notes: list[str] = field(default_factory=list)


def student_vs_teacher(frames: Frames) -> Comparison:
    """P(student > teacher) over seeds and over whole sweeps; Welch, Mann-Whitney and paired tests.

    The seed comparison uses the repeats stage only (the original trial of a repeated config
    was selected as the best, so counting it would favour its side).
    """
    rep_t = finished(frames.stage("repeats", role="teacher"))
    rep_s = finished(frames.stage("repeats", role="student"))
    sweep_t = finished(frames.stage("teachers"))
    sweep_s = finished(frames.stage("students"))
    improvement = []
    for scope, s_rows, t_rows in (
        ("seed repeats of the best configs", rep_s, rep_t),
        ("every completed trial of the two sweeps", sweep_s, sweep_t),
    ):
        for metric, higher in METRICS.items():
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
    tests: list[TestResult] = []
    for metric in METRICS:
        tests += two_sample_tests(
            _metric(rep_s, metric),
            _metric(rep_t, metric),
            metric=metric,
            comparison="student repeats vs teacher repeats",
        )
    pairs = baseline_pairs(frames)
    for metric in METRICS:
        tests += paired_tests(
            pairs.table[f"{metric}_student"].to_numpy(dtype=float),
            pairs.table[f"{metric}_baseline"].to_numpy(dtype=float),
            metric=metric,
            comparison="student vs its matched alpha=1 baseline",
        )
    notes = []
    for role, rows in (("teacher", rep_t), ("student", rep_s)):
        n_configs = config_key(rows).nunique() if len(rows) else 0
        if n_configs > 1:
            notes.append(f"{role} repeats pool {n_configs} configs")
    return Comparison(improvement, apply_holm(tests), pairs, notes)


def best_trial(trials: pd.DataFrame, metric: str = "dev_loss") -> pd.Series | None:
    """The completed trial with the best value of `metric` (ties: the lowest trial number)."""
    done = finished(trials)
    if metric not in done.columns:
        return None
    done = done[pd.to_numeric(done[metric], errors="coerce").notna()]
    if done.empty:
        return None
    ascending = not METRICS.get(metric, False)
    ordered = done.sort_values([metric, "number"], ascending=[ascending, True])
    return ordered.iloc[0]


def students_beating_best_teacher(frames: Frames) -> dict[str, Any]:
    """Per metric: how many completed student trials beat the best completed teacher trial."""
    teachers = finished(frames.stage("teachers"))
    students = finished(frames.stage("students"))
    out: dict[str, Any] = {}
    for metric, higher in METRICS.items():
        t = _metric(teachers, metric)
        s = _metric(students, metric)
        if t.size == 0 or s.size == 0:
            out[metric] = {
                "wins": 0,
                "n": int(s.size),
                "best_teacher": None,
                "estimate": Estimate(None, note="a side has no completed trials"),
            }
            continue
        best = float(t.max() if higher else t.min())
        wins, n, est = fraction_beating(s, best, higher=higher)
        out[metric] = {"wins": wins, "n": n, "best_teacher": best, "estimate": est}
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
    s_best = best_trial(frames.stage("students"))
    t_best = best_trial(frames.stage("teachers"))
    chosen: dict[str, Any] = {
        "student": None if s_best is None else s_best["trial_id"],
        "teacher": None if t_best is None else t_best["trial_id"],
        "student_number": None if s_best is None else int(s_best["number"]),
        "teacher_number": None if t_best is None else int(t_best["number"]),
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
