"""BabyLM's task rows in the headline: one row per (Super)GLUE task metric and zero-shot suite.

Descriptive: the mean per headline group of each task's official metric (trials' glue_*
columns and the zero-shot suites' accuracies, from the store's read contract). Only the
macro-averages (glue_average, zeroshot_average) enter the verdict's tested family.
"""

from __future__ import annotations

import html

import pandas as pd

from analysis.load import Frames, finished
from analysis.sections._format import Block, html_table, records

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


def majority_column(column: str) -> str | None:
    """glue_mrpc_f1 -> glue_mrpc_majority_f1: the column holding that score's majority-class
    baseline (trainers' `majority_<metric>`, stored beside the task's scores); None else."""
    if not column.startswith("glue_") or column.endswith("_average") or _MAJORITY in column:
        return None
    for metric in _METRICS:
        if column.endswith(f"_{metric}"):
            return f"{column.removesuffix(f'_{metric}')}{_MAJORITY}{metric}"
    return None


def glue_columns(trials: pd.DataFrame) -> list[str]:
    """The fine-tuning scores and glue_average, without their majority-class baselines."""
    return [c for c in trials.columns if c.startswith("glue_") and _MAJORITY not in c]


_MAJORITY = "_majority_"
_TABLE = ["group", "label", "column", "task", "mean", "n", "majority", "majority_high"]
_TABLE += ["not_above", "n_majority"]


def task_means(frames: Frames, columns: list[str]) -> pd.DataFrame:
    """Mean of each column per headline group (completed trials that have it); where the
    trials stored the task's majority-class baseline, its range (`majority`, `majority_high`)
    and how many of them (`n_majority`) do not beat their own (`not_above`)."""
    rows = []
    for key, label in frames.groups():
        done = finished(frames.group(key))
        for c in columns:
            if c not in done:
                continue
            values = pd.to_numeric(done[c], errors="coerce").dropna()
            if not len(values):
                continue
            row = {
                "group": key,
                "label": label,
                "column": c,
                "task": task_label(c),
                "mean": float(values.mean()),
                "n": len(values),
                **dict.fromkeys(_TABLE[6:]),
            }
            baseline_column = majority_column(c)
            if baseline_column in done:
                base = pd.to_numeric(done[baseline_column], errors="coerce")[values.index]
                base = base.dropna()
                if len(base):
                    row["majority"], row["majority_high"] = float(base.min()), float(base.max())
                    # 1e-9: a fine-tune that predicts the majority class scores it exactly
                    row["not_above"] = int((values[base.index] <= base + 1e-9).sum())
                    row["n_majority"] = len(base)
            rows.append(row)
    return pd.DataFrame(rows, columns=_TABLE)


def zero_shot_table(frames: Frames) -> pd.DataFrame:
    return task_means(frames, [c for c in ZERO_SHOT_COLUMNS if c in frames.trials])


def task_block(table: pd.DataFrame, *, key: str, what: str) -> Block:
    """One row per task column (averages last), one column per group that has any."""
    columns = sorted(table["column"].unique(), key=lambda c: (c.endswith("_average"), c))
    groups = list(dict.fromkeys(table["label"]))
    found = records(table)
    cells = {(r["column"], r["label"]): _cell(r) for r in found}
    header = ["task · metric"] + [html.escape(g) for g in groups]
    baselines = {r["column"]: r for r in found if r["majority"] is not None}
    if baselines:
        header.insert(1, "majority class")
    rows = [
        [html.escape(task_label(c))]
        + ([_baseline(baselines.get(c))] if baselines else [])
        + [cells.get((c, g), "—") for g in groups]
        for c in columns
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
        "are tested in the verdict where seed repeats carry them." + _majority_reading(found),
        table=html_table(header, rows, key=key),
    )


def _cell(row: dict) -> str:
    """'0.690 (n=3)', flagged where fine-tunes do not beat their majority-class baseline."""
    cell = f"{row['mean']:.3f} <span class='note'>(n={row['n']})</span>"
    if row["not_above"]:
        cell += (
            f" <span class='below-majority'>⚑ {int(row['not_above'])} of {int(row['n_majority'])} "
            "not above the majority class</span>"
        )
    return cell


def _baseline(row: dict | None) -> str:
    if row is None:
        return "—"
    low, high = row["majority"], row["majority_high"]
    return f"{low:.3f}" if high - low < 5e-4 else f"{low:.3f}–{high:.3f}"


def _majority_reading(found: list[dict]) -> str:
    """What the majority-class column means, and every group whose fine-tunes fail to beat it."""
    with_baseline = [r for r in found if r["majority"] is not None]
    if not with_baseline:
        return ""
    text = (
        " Majority class: each task's metric(s) when every dev example is given the most "
        "frequent gold class of those same dev examples (MRPC: always 'paraphrase'; CoLA's MCC "
        "is then 0): what a fine-tune that learned nothing but the label counts scores."
    )
    behind = [r for r in with_baseline if r["not_above"]]
    if not behind:
        return text + " Every fine-tune beats it."
    named = "; ".join(
        f"{r['task']} of {r['label']}: {int(r['not_above'])} of {int(r['n_majority'])}"
        for r in behind
    )
    return (
        text
        + f" Fine-tunes not above it (⚑): {named}; those scores show nothing learned beyond the label counts."
    )
