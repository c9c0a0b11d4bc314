"""BabyLM's task rows in the headline: one row per (Super)GLUE task metric and zero-shot suite.

Descriptive: the mean per headline group of each task's official metric (trials' glue_*
columns and the zero-shot suites' accuracies, from the store's read contract). Only the
macro-averages (glue_average, zeroshot_average) enter the verdict's tested family.
"""

from __future__ import annotations

import html

import pandas as pd

from analysis.load import Frames, finished
from analysis.sections._format import Block, html_table

ZERO_SHOT_COLUMNS = (
    "blimp_filtered_accuracy",
    "blimp_supplement_accuracy",
    "ewok_accuracy",
    "zeroshot_average",
)
"""The zero-shot suites' columns in read_trials (suite overall accuracy) and their average."""

_NAMES = {
    "glue_average": "GLUE average",
    "zeroshot_average": "zero-shot average",
    "blimp_filtered_accuracy": "BLiMP filtered · accuracy",
    "blimp_supplement_accuracy": "BLiMP supplement · accuracy",
    "ewok_accuracy": "EWoK · accuracy",
}
_METRICS = ("accuracy", "mcc", "f1a", "f1", "em")


def task_label(column: str) -> str:
    """glue_mnli_mm_accuracy -> "mnli_mm · accuracy"; the averages and suites by name."""
    if column in _NAMES:
        return _NAMES[column]
    task = column.removeprefix("glue_")
    for metric in _METRICS:
        if task.endswith(f"_{metric}"):
            return f"{task.removesuffix(f'_{metric}')} · {metric}"
    return task


def task_means(frames: Frames, columns: list[str]) -> pd.DataFrame:
    """Mean of each column per headline group (completed trials that have it)."""
    rows = []
    for key, label in frames.groups():
        done = finished(frames.group(key))
        for c in columns:
            if c not in done:
                continue
            values = pd.to_numeric(done[c], errors="coerce").dropna()
            if len(values):
                rows.append(
                    {
                        "group": key,
                        "label": label,
                        "column": c,
                        "task": task_label(c),
                        "mean": float(values.mean()),
                        "n": len(values),
                    }
                )
    return pd.DataFrame(rows, columns=["group", "label", "column", "task", "mean", "n"])


def zero_shot_table(frames: Frames) -> pd.DataFrame:
    return task_means(frames, [c for c in ZERO_SHOT_COLUMNS if c in frames.trials])


def task_block(table: pd.DataFrame, *, key: str, what: str) -> Block:
    """One row per task column (averages last), one column per group that has any."""
    columns = sorted(table["column"].unique(), key=lambda c: (c.endswith("_average"), c))
    groups = list(dict.fromkeys(table["label"]))
    cells = {
        (r["column"], r["label"]): f"{r['mean']:.3f} <span class='note'>(n={r['n']})</span>"
        for r in table.to_dict(orient="records")
    }
    header = ["task · metric"] + [html.escape(g) for g in groups]
    rows = [
        [html.escape(task_label(c))] + [cells.get((c, g), "—") for g in groups] for c in columns
    ]
    by = {(r["group"], r["column"]): r for r in table.to_dict(orient="records")}
    parts = []
    for c in columns:
        s, t = by.get(("repeats:student", c)), by.get(("repeats:teacher", c))
        if s and t:
            parts.append(
                f"{task_label(c)} {s['mean']:.3f} vs {t['mean']:.3f} ({s['n']} vs {t['n']} seeds)"
            )
    reading = (
        f"{what}, student repeats against teacher repeats (mean): " + "; ".join(parts)
        if parts
        else f"{what} was run for: " + ", ".join(groups) + "; no student-teacher pair of "
        "repeat groups has it, so no comparison is drawn"
    )
    return Block(
        reading + ". Per-task rows are descriptive, outside the tested family; the averages "
        "are tested in the verdict where seed repeats carry them.",
        table=html_table(header, rows, key=key),
    )
