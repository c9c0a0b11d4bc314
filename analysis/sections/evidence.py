"""Section 2: the evidence behind the verdicts (the tested family and descriptive tests)."""

from __future__ import annotations

import html

from analysis.headline import reported_metrics, student_vs_teacher
from analysis.load import Frames
from analysis.sections._format import (
    Block,
    Section,
    fmt,
    fmt_diff,
    fmt_interval,
    fmt_num,
    fmt_p,
    html_table,
    metric_label,
)
from analysis.verdict import ALPHA, MIN_PAIRS, verdicts


def comparison_section(frames: Frames) -> Section:
    section = Section("comparison", "2. The evidence behind the verdicts")
    found = verdicts(frames)
    # the family: one paired t-test per comparison and metric, on seed pairs; each reason
    # for an undecided verdict is written once under the table and marked in its rows
    why: dict[str, int] = {}
    rows = []
    for cv in found:
        for v in cv.metrics:
            rows.append(
                [
                    html.escape(cv.label),
                    metric_label(v.metric),
                    str(v.n_pairs),
                    fmt_diff(v.metric, v.difference)
                    + (
                        f" [{fmt_diff(v.metric, v.low)}, {fmt_diff(v.metric, v.high)}]"
                        if v.low is not None and v.high is not None
                        else ""
                    ),
                    (
                        f"{fmt_num(v.p_student_better)} [{fmt_num(v.p_student_better_low)}, "
                        f"{fmt_num(v.p_student_better_high)}]"
                        if v.p_student_better is not None
                        else "—"
                    ),
                    fmt_p(v.p),
                    fmt_p(v.p_holm),
                    "yes" if v.in_family else "no (descriptive)",
                    f"<b>{v.verdict}</b>"
                    + (f"<sup>{why.setdefault(v.reason, len(why) + 1)}</sup>" if v.reason else ""),
                ]
            )
    in_family = sum(v.in_family for cv in found for v in cv.metrics)
    total = sum(len(cv.metrics) for cv in found)
    reading = (
        f"{in_family} of the {total} paired comparisons can reach significance at their number "
        f"of seed pairs ({MIN_PAIRS}+ with variance, BLiMP above chance) and form the Holm "
        f"family; the others are descriptive. Difference is student minus other (for a loss, "
        "negative means the student is better); P(student better) is the share of seeds the "
        "student wins, with an exact Clopper-Pearson interval."
    )
    if why:
        reading += " Why undecided: " + " ".join(
            f"({i}) {reason}." for reason, i in sorted(why.items(), key=lambda x: x[1])
        )
    section.blocks.append(
        Block(
            reading,
            table=html_table(
                [
                    "comparison",
                    "metric",
                    "seed pairs",
                    "difference [95% CI]",
                    "P(student better) [95% CI]",
                    "p (paired t)",
                    "p (Holm)",
                    "in the family",
                    "verdict",
                ],
                rows,
                key="verdicts",
            ),
        )
    )
    comp = student_vs_teacher(frames)
    # probability of improvement (descriptive)
    rows, sentences = [], []
    for r in comp.improvement:
        m, est = r["metric"], r["estimate"]
        rows.append(
            [
                html.escape(r["scope"]),
                metric_label(m),
                f"{r['n_student']} vs {r['n_teacher']}",
                fmt_interval(est),
            ]
        )
        if m == "blimp_overall" and est.value is not None:
            ci = (
                f" (95% CI {est.low:.2f}–{est.high:.2f})"
                if est.low is not None
                else f" (no interval: {est.note})"
            )
            sentences.append(
                f"Over {r['scope']}, P(student BLiMP > teacher BLiMP) = {est.value:.2f}{ci}."
            )
    section.blocks.append(
        Block(
            " ".join(sentences)
            + " 0.5 means no difference; for a loss, 'better' means lower. Descriptive: these "
            "pool unpaired values and decide nothing.",
            table=html_table(
                ["scope", "metric", "student vs teacher values", "P(student better) [95% CI]"],
                rows,
                key="improvement",
            ),
        )
    )
    # descriptive tests, each with the smallest p it could reach
    rows = []
    for t in comp.tests:
        reachable = t.min_p is not None and t.min_p < ALPHA
        rows.append(
            [
                html.escape(t.comparison),
                metric_label(t.metric),
                t.name,
                f"{t.n_a} vs {t.n_b}",
                fmt_diff(t.metric, t.difference),
                f"{t.effect_name} = {fmt_num(t.effect)}" if t.effect is not None else "—",
                fmt_p(t.p_value),
                "none" if t.min_p == 0 else fmt_p(t.min_p),
                html.escape(t.note)
                if t.note
                else ("could reach 0.05" if reachable else "can never reach 0.05 at this n"),
            ]
        )
    never = [t for t in comp.tests if t.min_p is not None and t.min_p >= ALPHA]
    reading = (
        "Descriptive tests, outside the family: unpaired tests on the repeats and paired tests "
        "of each student config against its alpha=1 control. "
        + (
            f"{len(never)} of them can never reach p < {ALPHA:g} at their n (see the smallest "
            "attainable p), so a large p there is no evidence of no effect."
            if never
            else ""
        )
    )
    if comp.notes:
        reading += " Note: " + "; ".join(comp.notes) + "."
    section.blocks.append(
        Block(
            reading.strip(),
            table=html_table(
                [
                    "comparison",
                    "metric",
                    "test",
                    "n",
                    "difference (student − other)",
                    "effect size",
                    "p",
                    "smallest attainable p",
                    "reach",
                ],
                rows,
                key="tests",
            ),
        )
    )
    pairs = comp.pairs.table
    metrics = reported_metrics(frames)
    if pairs.empty:
        section.blocks.append(
            Block(
                "No completed student trial has a completed matched baseline (same config, "
                "alpha=1), so the effect of distillation itself cannot be isolated."
            )
        )
    else:
        d = pairs["blimp_overall_student"] - pairs["blimp_overall_baseline"]
        wins = int((d > 0).sum())
        reading = (
            f"{len(pairs)} student config(s) have a matched alpha=1 baseline; distillation "
            f"changes BLiMP by {fmt_diff('blimp_overall', float(d.mean()))} on average and "
            f"helps in {wins} of {len(pairs)}."
        )
        rows = [
            [f"#{int(r['student_number'])}", str(int(r["n_baselines"]))]
            + [fmt(m, r[f"{m}_{side}"]) for m in metrics for side in ("student", "baseline")]
            for r in pairs.to_dict(orient="records")
        ]
        header = ["student trial", "baselines"] + [
            f"{metric_label(m)}: {side}" for m in metrics for side in ("student", "baseline")
        ]
        section.blocks.append(Block(reading, table=html_table(header, rows, key="baselines")))
    section.data["improvement"] = comp.improvement
    section.data["tests"] = comp.tests
    section.data["baseline_pairs"] = pairs.to_dict(orient="records")
    return section
