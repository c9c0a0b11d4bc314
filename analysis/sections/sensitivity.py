"""Section 4: sensitivity to the hyperparameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis import figures
from analysis.headline import reported_metrics, students_beating_best_teacher
from analysis.importance import hyperparameter_importances
from analysis.load import HYPERPARAMETERS, Frames, finished
from analysis.sections._format import Block, Section, fmt, fmt_interval, html_table
from analysis.stats import MIN_FOR_CI

SMALL_SAMPLE = 20
"""Below this many completed trials per study, importances carry a small-sample caveat."""


def _spearman(x: pd.Series, y: pd.Series) -> float | None:
    both = pd.concat([x, y], axis=1).dropna()
    if len(both) < MIN_FOR_CI or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
        return None
    rho = stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic
    return float(rho) if np.isfinite(rho) else None


def sensitivity_section(frames: Frames) -> Section:
    section = Section("sensitivity", "4. Sensitivity to the hyperparameters")
    kinds = frames.trials["stage_kind"]
    done = finished(frames.trials[kinds.isin(["teachers", "students"])])
    students = finished(frames.trials[kinds == "students"])
    metrics = reported_metrics(frames)
    # slices
    rhos = {
        p: _spearman(
            students.get(f"param_{p}", pd.Series(dtype=float)),
            students.get("blimp_overall", pd.Series(dtype=float)),
        )
        for p in HYPERPARAMETERS
    }
    section.data["spearman_blimp_students"] = rhos
    known = {p: r for p, r in rhos.items() if r is not None}
    if known:
        top = max(known, key=lambda p: abs(known[p]))
        others = [f"{figures.PARAM_LABELS[p]} ρ = {r:+.2f}" for p, r in known.items() if p != top]
        reading = (
            f"Among {len(students)} completed student trials, BLiMP tracks "
            f"{figures.PARAM_LABELS[top]} most closely (Spearman ρ = {known[top]:+.2f})"
            + (
                "; " + ", ".join(others) + "."
                if others
                else ". It is the only hyperparameter with a rank correlation: the others did "
                "not vary enough."
            )
        )
    else:
        reading = (
            f"{len(students)} completed student trial(s): too few, or too little variation, "
            f"for a rank correlation (needs {MIN_FOR_CI}+ trials with a varied parameter)."
        )
    if done.empty:
        section.blocks.append(Block("No completed teacher or student trials to plot."))
    else:
        section.blocks.append(Block(reading, figure=figures.slice_figure(done, metrics)))
    # parallel coordinates
    if (
        len(students) >= 2
        and "blimp_overall" in students
        and students["blimp_overall"].notna().all()
    ):
        best = students.sort_values(["blimp_overall", "number"], ascending=[False, True]).iloc[0]
        params = ", ".join(
            f"{p}={best[f'param_{p}']:.3g}"
            for p in HYPERPARAMETERS
            if f"param_{p}" in best and pd.notna(best[f"param_{p}"])
        )
        reading = (
            f"Each line is one of {len(students)} completed student trials, coloured by BLiMP; "
            f"the best (#{int(best['number'])}, {fmt('blimp_overall', best['blimp_overall'])}) "
            f"used {params}."
        )
        section.blocks.append(
            Block(reading, figure=figures.parallel_coordinates(students, metrics))
        )
    else:
        section.blocks.append(
            Block(
                f"A parallel-coordinates plot needs 2+ completed student trials with BLiMP; there are "
                f"{len(students)}."
            )
        )
    # importances
    searched = tuple(frames.stages("teachers") + frames.stages("students"))
    imp, notes = hyperparameter_importances(frames.storage_url, frames.sweep, searched)
    section.data["importances"] = imp.to_dict(orient="records")
    section.data["importance_notes"] = notes
    counts = {f"{frames.sweep}/{st}": len(finished(frames.stage(st))) for st in searched}
    small = {k: n for k, n in counts.items() if k in set(imp["study"]) and n < SMALL_SAMPLE}
    section.data["importance_caveat"] = (
        "Small sample: importances from "
        + ", ".join(f"{n} completed trials of {k}" for k, n in small.items())
        + f" (fewer than {SMALL_SAMPLE}) rank parameters unreliably; read them as hints, "
        "not findings."
        if small
        else None
    )
    parts = []
    for (study, evaluator), rows in imp.groupby(["study", "evaluator"], sort=False):
        top = rows.sort_values("importance", ascending=False).iloc[0]
        parts.append(
            f"{evaluator} ranks {top['param']} first for {study} ({top['importance']:.2f})"
        )
    reading = ("; ".join(parts) + ". " if parts else "No importance could be computed. ") + (
        "Not shown: " + "; ".join(notes) + ". " if notes else ""
    )
    if section.data["importance_caveat"]:
        reading += section.data["importance_caveat"]
    section.blocks.append(
        Block(reading.strip(), figure=figures.importance_figure(imp) if parts else None)
    )
    # fraction of student configs beating the best teacher
    beat = students_beating_best_teacher(frames)
    section.data["students_beating_best_teacher"] = beat
    rows, sentences = [], []
    for m, r in beat.items():
        est = r["estimate"]
        rows.append(
            [
                figures.METRIC_LABELS[m],
                fmt(m, r["best_teacher"]),
                f"{r['wins']} of {r['n']}",
                fmt_interval(est),
            ]
        )
        if est.value is None:
            sentences.append(f"For {figures.METRIC_LABELS[m]}: {est.note}.")
        else:
            sentences.append(
                f"{r['wins']} of {r['n']} student trials ({100 * est.value:.0f}%, 95% CI "
                f"{100 * est.low:.0f}–{100 * est.high:.0f}%) beat the best teacher's "
                f"{figures.METRIC_LABELS[m]} of {fmt(m, r['best_teacher'])} (descriptive: every "
                f"student against one chosen teacher, not a matched comparison)."
            )
    section.blocks.append(
        Block(
            " ".join(sentences),
            table=html_table(
                [
                    "metric",
                    "teacher chosen on dev loss",
                    "student trials (same epochs) that beat it",
                    "fraction [95% Wilson CI]",
                ],
                rows,
                key="beating",
            ),
        )
    )
    return section
