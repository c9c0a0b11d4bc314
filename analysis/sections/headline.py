"""Section 1: every group at a glance (held-out metrics), and BabyLM's task rows."""

from __future__ import annotations

import html

import pandas as pd

from analysis.headline import headline_table, reported_metrics
from analysis.load import Frames
from analysis.sections._format import (
    Block,
    Section,
    fmt,
    fmt_interval,
    html_table,
    metric_label,
    records,
    seeds_text,
)
from analysis.sections.tasks import glue_columns, task_block, task_means, zero_shot_table
from analysis.stats import MIN_FOR_CI, Estimate


def headline_section(frames: Frames) -> Section:
    metrics = reported_metrics(frames)
    table = headline_table(frames)
    rows_data = records(table)
    section = Section("headline", "1. Headline: every group at a glance (held-out metrics)")
    section.data["headline"] = rows_data
    rows = []
    for r in rows_data:
        cells = [
            html.escape(r["label"]),
            f"{r['trials']}"
            + (f" <span class='note'>(+{r['pruned']} pruned)</span>" if r["pruned"] else "")
            + (f" <span class='note'>(+{r['failed']} failed)</span>" if r["failed"] else ""),
            str(r["configs"]),
            seeds_text(r["seeds"]),
        ]
        for m in metrics:
            est = Estimate(
                r[f"{m}_iqm"], r[f"{m}_iqm_low"], r[f"{m}_iqm_high"], r[f"{m}_n"], r[f"{m}_note"]
            )
            cells += [fmt(m, r[f"{m}_best"]), fmt(m, r[f"{m}_mean"]), fmt_interval(est, m)]
        rows.append(cells)
    header = ["group", "completed trials", "configs", "seeds"]
    for m in metrics:
        label = metric_label(m)
        header += [
            f"{label}: chosen on dev",
            f"{label}: mean",
            f"{label}: IQM [95% CI]",
        ]
    sentences = []
    by_group = {r["group"]: r for r in rows_data}
    teachers = frames.stages("teachers")
    for s_stage in frames.stages("students"):
        if not teachers:
            break
        t, s = by_group.get(teachers[0]), by_group.get(s_stage)
        if t is None or s is None:
            continue
        for m in metrics:
            label = metric_label(m)
            if t[f"{m}_n"] == 0 or s[f"{m}_n"] == 0:
                sentences.append(
                    f"No {label} comparison of {s_stage} is possible yet: {t[f'{m}_n']} "
                    f"completed teacher and {s[f'{m}_n']} completed student trial(s) carry it."
                )
                continue
            sentence = (
                f"{s_stage}: the config chosen on dev loss scores {label} "
                f"{fmt(m, s[f'{m}_best'])} against the teachers' {fmt(m, t[f'{m}_best'])}; "
                f"interquartile means are {fmt(m, s[f'{m}_iqm'])} over {s[f'{m}_n']} student and "
                f"{fmt(m, t[f'{m}_iqm'])} over {t[f'{m}_n']} teacher trials"
            )
            if s[f"{m}_iqm_low"] is not None and t[f"{m}_iqm_low"] is not None:
                overlap = (
                    s[f"{m}_iqm_low"] <= t[f"{m}_iqm_high"]
                    and t[f"{m}_iqm_low"] <= s[f"{m}_iqm_high"]
                )
                sentence += ", and their 95% intervals " + (
                    "overlap." if overlap else "do not overlap."
                )
            else:
                sentence += (
                    f"; with so few trials this is no evidence of robustness (an interval "
                    f"needs {MIN_FOR_CI}+ trials per group)."
                )
            sentences.append(sentence)
    sentences.append(
        "These are descriptive: the verdicts above rest on the seed repeats. Losses are in "
        "nats per token, BLiMP in %."
    )
    section.blocks.append(
        Block(" ".join(sentences), table=html_table(header, rows, key="headline"))
    )
    glue = glue_table(frames)
    section.data["glue"] = glue.to_dict(orient="records")
    if not glue.empty:
        section.blocks.append(task_block(glue, key="glue", what="Fine-tuned on (Super)GLUE"))
    zero_shot = zero_shot_table(frames)
    section.data["zero_shot"] = zero_shot.to_dict(orient="records")
    if not zero_shot.empty:
        section.blocks.append(
            task_block(zero_shot, key="zero_shot", what="BabyLM's zero-shot suites")
        )
    return section


def glue_table(frames: Frames) -> pd.DataFrame:
    """Mean of each glue_* column (a task's metric, glue_average) per headline group, beside
    its majority-class baseline where the trials stored one."""
    return task_means(frames, glue_columns(frames.trials))
