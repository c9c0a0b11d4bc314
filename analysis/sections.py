"""The report's sections: each a function of Frames returning its numbers and its figures.

`Section.data` holds every number the section shows (the report embeds them as JSON);
`Section.blocks` the figures and tables, each with the one sentence that reads it. The
arithmetic is in analysis.stats, analysis.headline and analysis.verdict; here it is only
chosen, worded and laid out. analysis.report renders the sections with a Jinja2 template.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup
from scipy import stats

from analysis import figures
from analysis.headline import (
    headline_table,
    paradigm_differences,
    reported_metrics,
    same_epochs,
    student_vs_teacher,
    students_beating_best_teacher,
)
from analysis.importance import hyperparameter_importances
from analysis.load import HYPERPARAMETERS, SELECTION_METRIC, Frames, finished
from analysis.stats import (
    CONFIDENCE,
    MIN_FOR_CI,
    MIN_FOR_TEST,
    N_RESAMPLES,
    Estimate,
    ExpectedBest,
    expected_best_curve,
    matched_budget_test,
)
from analysis.verdict import ALPHA, MIN_PAIRS, pool_asymmetries, verdicts

__all__ = [
    "SECTIONS",
    "Block",
    "Section",
    "cluster_section",
    "comparison_section",
    "expected_best_section",
    "glue_table",
    "headline_section",
    "methods_section",
    "paradigm_section",
    "sensitivity_section",
    "verdict_section",
]

SMALL_SAMPLE = 20
"""Below this many completed trials per study, importances carry a small-sample caveat."""


@dataclass
class Block:
    """A figure or a table with the sentence that reads it (table cells are safe HTML)."""

    reading: str
    figure: go.Figure | None = None
    table: str | None = None


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    """Every number the section shows, JSON-able once analysis.report converts dataclasses."""


# ---------------------------------------------------------------- formatting


def fmt(metric: str, value: float | None) -> str:
    """BLiMP as a percentage, a loss in nats per token with four decimals; None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if metric == "blimp_overall":
        return f"{100 * value:.2f}%"
    return f"{value:.4f}"


def fmt_diff(metric: str, value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if metric == "blimp_overall":
        return f"{100 * value:+.2f} pp"
    return f"{value:+.4f}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def fmt_interval(est: Estimate, metric: str | None = None) -> str:
    """'value [low, high]', or 'value (why no interval)'."""
    show = (lambda v: fmt(metric, v)) if metric else (lambda v: fmt_num(v))
    if est.value is None:
        return html.escape(est.note or "—")
    if est.low is None or est.high is None:
        return f"{show(est.value)} <span class='note'>({html.escape(est.note or '')})</span>"
    return f"{show(est.value)} [{show(est.low)}, {show(est.high)}]"


def _seeds_text(seeds: list[int]) -> str:
    if not seeds:
        return "—"
    if len(seeds) <= 8:
        return ", ".join(str(s) for s in seeds)
    return f"{len(seeds)} seeds, {seeds[0]}…{seeds[-1]}"


def _table(header: list[str], rows: list[list[str]], *, key: str) -> str:
    """An HTML table; cells are trusted HTML (callers escape user text)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return Markup(
        f"<table class='numbers' data-table='{key}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


# ---------------------------------------------------------------- sections


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with missing values as None (pandas turns None into NaN in float columns)."""
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _label(metric: str) -> str:
    return figures.METRIC_LABELS.get(metric, metric)


def verdict_section(frames: Frames) -> Section:
    """The answer first: one verdict line per comparison, and the warning box."""
    section = Section("verdict", "Verdict")
    found = verdicts(frames)
    metrics = reported_metrics(frames)
    warnings = _asymmetry_warnings(frames)
    if SELECTION_METRIC in metrics:
        warnings.insert(
            0,
            "This store has no test loss (trials ran before it was recorded): loss numbers "
            "below are dev loss, the split that also chose the configs, so they are optimistic.",
        )
    section.data["verdicts"] = found
    section.data["verdict_lines"] = [v.line for v in found]
    section.data["warnings"] = warnings
    section.data["reported_metrics"] = list(metrics)
    section.data["verdict_basis"] = (
        "Held-out metrics (test loss, BLiMP)"
        if SELECTION_METRIC not in metrics
        else "BLiMP and, for want of a test loss in this store, dev loss"
    ) + ", seed repeats paired by seed, Holm-corrected at 0.05."
    if not found:
        section.data["verdict_lines"] = [
            "No comparison is possible: the store has no students stage with a teachers, "
            "baseline or reference stage to compare with."
        ]
    return section


def _asymmetry_warnings(frames: Frames) -> list[str]:
    out = []
    for s in frames.stages("students"):
        for t in frames.stages("teachers"):
            asym = pool_asymmetries(frames, s, t)
            if asym:
                out.append(
                    f"{s} and {t} were not searched alike: "
                    + "; ".join(asym)
                    + ". Sweep-level numbers compare at matched budget (expected best at equal "
                    "k) and only trials with the same epochs; a verdict also needs that "
                    "matched comparison to agree."
                )
    return out


def headline_section(frames: Frames) -> Section:
    metrics = reported_metrics(frames)
    table = headline_table(frames)
    records = _records(table)
    section = Section("headline", "1. Headline: every group at a glance (held-out metrics)")
    section.data["headline"] = records
    rows = []
    for r in records:
        cells = [
            html.escape(r["label"]),
            f"{r['trials']}"
            + (f" <span class='note'>(+{r['pruned']} pruned)</span>" if r["pruned"] else "")
            + (f" <span class='note'>(+{r['failed']} failed)</span>" if r["failed"] else ""),
            str(r["configs"]),
            _seeds_text(r["seeds"]),
        ]
        for m in metrics:
            est = Estimate(
                r[f"{m}_iqm"], r[f"{m}_iqm_low"], r[f"{m}_iqm_high"], r[f"{m}_n"], r[f"{m}_note"]
            )
            cells += [fmt(m, r[f"{m}_best"]), fmt(m, r[f"{m}_mean"]), fmt_interval(est, m)]
        rows.append(cells)
    header = ["group", "completed trials", "configs", "seeds"]
    for m in metrics:
        label = _label(m)
        header += [
            f"{label}: chosen on dev",
            f"{label}: mean",
            f"{label}: IQM [95% CI]",
        ]
    sentences = []
    by_group = {r["group"]: r for r in records}
    teachers = frames.stages("teachers")
    for s_stage in frames.stages("students"):
        if not teachers:
            break
        t, s = by_group.get(teachers[0]), by_group.get(s_stage)
        if t is None or s is None:
            continue
        for m in metrics:
            label = _label(m)
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
    section.blocks.append(Block(" ".join(sentences), table=_table(header, rows, key="headline")))
    glue = glue_table(frames)
    section.data["glue"] = glue.to_dict(orient="records")
    if not glue.empty:
        section.blocks.append(_glue_block(glue))
    return section


def _glue_block(glue: pd.DataFrame) -> Block:
    columns = sorted(glue["column"].unique())
    header = ["group"] + [html.escape(c.removeprefix("glue_")) for c in columns]
    cells: dict[str, dict[str, str]] = {}
    for r in glue.to_dict(orient="records"):
        cells.setdefault(r["label"], {})[r["column"]] = (
            f"{r['mean']:.3f} <span class='note'>(n={r['n']})</span>"
        )
    rows = [[html.escape(label)] + [v.get(c, "—") for c in columns] for label, v in cells.items()]
    by = {(r["group"], r["column"]): r for r in glue.to_dict(orient="records")}
    parts = []
    for c in columns:
        s, t = by.get(("repeats:student", c)), by.get(("repeats:teacher", c))
        if s and t:
            parts.append(
                f"{c.removeprefix('glue_')} {s['mean']:.3f} vs {t['mean']:.3f} "
                f"({s['n']} vs {t['n']} seeds)"
            )
    reading = (
        "Fine-tuned on GLUE, student repeats against teacher repeats (mean): " + "; ".join(parts)
        if parts
        else "GLUE was run for: " + ", ".join(sorted(cells)) + "; no student-teacher pair of "
        "repeat groups has it, so no comparison is drawn"
    )
    return Block(
        reading + ". GLUE is descriptive here, outside the tested family.",
        table=_table(header, rows, key="glue"),
    )


def glue_table(frames: Frames) -> pd.DataFrame:
    """Mean of each glue_* column per headline group (completed trials that have it)."""
    columns = [c for c in frames.trials.columns if c.startswith("glue_")]
    rows = []
    for key, label in frames.groups():
        done = finished(frames.group(key))
        for c in columns:
            values = pd.to_numeric(done[c], errors="coerce").dropna()
            if len(values):
                rows.append(
                    {
                        "group": key,
                        "label": label,
                        "column": c,
                        "mean": float(values.mean()),
                        "n": len(values),
                    }
                )
    return pd.DataFrame(rows, columns=["group", "label", "column", "mean", "n"])


def comparison_section(frames: Frames) -> Section:
    section = Section("comparison", "2. The evidence behind the verdicts")
    found = verdicts(frames)
    # the family: one paired t-test per comparison and metric, on seed pairs
    rows = []
    for cv in found:
        for v in cv.metrics:
            rows.append(
                [
                    html.escape(cv.label),
                    _label(v.metric),
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
                    + (f" <span class='note'>({html.escape(v.reason)})</span>" if v.reason else ""),
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
    section.blocks.append(
        Block(
            reading,
            table=_table(
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
                _label(m),
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
            table=_table(
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
                _label(t.metric),
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
            table=_table(
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
            f"{_label(m)}: {side}" for m in metrics for side in ("student", "baseline")
        ]
        section.blocks.append(Block(reading, table=_table(header, rows, key="baselines")))
    section.data["improvement"] = comp.improvement
    section.data["tests"] = comp.tests
    section.data["baseline_pairs"] = pairs.to_dict(orient="records")
    return section


def expected_best_section(frames: Frames) -> Section:
    section = Section(
        "expected_best", "3. Expected best score against number of trials (matched budget)"
    )
    metrics = reported_metrics(frames)
    teachers, students = frames.stages("teachers"), frames.stages("students")
    t_stage = teachers[0] if teachers else None
    curves: dict[str, dict[str, ExpectedBest]] = {m: {} for m in metrics}
    matched: dict[str, dict[str, Any]] = {}
    sentences = []
    for s_stage in students:
        s_pool, t_pool, epochs = same_epochs(
            frames.stage(s_stage), frames.stage(t_stage) if t_stage else frames.trials.iloc[0:0]
        )
        for m, higher in metrics.items():
            sv = pd.to_numeric(s_pool[m], errors="coerce").dropna().to_numpy(float)
            tv = pd.to_numeric(t_pool[m], errors="coerce").dropna().to_numpy(float)
            curves[m][s_stage] = expected_best_curve(sv, higher=higher)
            if t_stage is not None:
                curves[m][t_stage] = expected_best_curve(tv, higher=higher)
            if sv.size == 0 or tv.size == 0:
                continue
            diff, p, k = matched_budget_test(sv, tv, higher=higher)
            sign = 1.0 if higher else -1.0
            lead = sign * float(diff)  # positive: the students are ahead
            t_curve = curves[m][t_stage]  # type: ignore[index]
            half = math.ceil(t_curve.n / 2)
            gain = sign * (t_curve.mean[-1] - t_curve.mean[half - 1]) if t_curve.n >= 2 else None
            matched[f"{s_stage}:{m}"] = {
                "students": s_stage,
                "teachers": t_stage,
                "metric": m,
                "k": k,
                "epochs": epochs,
                "student": float(expected_best_curve(sv, higher=higher).mean[k - 1]),
                "teacher": float(t_curve.mean[k - 1]),
                "difference": float(diff),
                "student_ahead": lead > 0,
                "p": float(p),
                "teacher_gain_doubling": gain,
            }
            label = _label(m)
            sentence = (
                f"{s_stage}, {label}: at an equal budget of k = {k} trials"
                + (f" (trials that trained {epochs} epochs)" if epochs is not None else "")
                + f", the expected best is {fmt(m, matched[f'{s_stage}:{m}']['student'])} for "
                f"students and {fmt(m, matched[f'{s_stage}:{m}']['teacher'])} for teachers: "
                + (
                    f"the students lead by {fmt_diff(m, abs(float(diff)))}"
                    if lead > 0
                    else f"the students trail by {fmt_diff(m, abs(float(diff)))}"
                )
                + f" (permutation p = {fmt_p(float(p))})."
            )
            if gain is not None:
                if lead > 0:
                    sentence += (
                        f" Doubling the teacher budget from {half} to {t_curve.n} trials improves "
                        f"the teachers' expected best by {fmt_diff(m, abs(gain))}, "
                        + (
                            "less than the students' lead, so better-tuned teachers would not "
                            "be expected to close it."
                            if abs(gain) < lead
                            else "at least the students' lead, so better-tuned teachers might "
                            "close it."
                        )
                    )
                else:
                    sentence += (
                        " The students are behind at equal budget, so more teacher tuning could "
                        "only widen the gap; the question is whether more student trials close it."
                    )
            sentences.append(sentence)
    section.data["expected_best"] = curves
    section.data["matched_budget"] = matched
    if not sentences:
        section.blocks.append(
            Block(
                "The curves need completed trials in a teachers and a students stage; whether "
                "better-tuned teachers would close the gap cannot be judged."
            )
        )
        if any(c.n for per in curves.values() for c in per.values()):
            section.blocks[-1].figure = figures.expected_best_figure(curves)
        return section
    if any(c.n < MIN_FOR_CI for per in curves.values() for c in per.values()):
        sentences.append(
            f"Bands need {MIN_FOR_CI}+ trials per sweep, so whether better-tuned teachers would "
            "close the gap cannot be judged yet for the thinner sweeps."
        )
    section.blocks.append(Block(" ".join(sentences), figure=figures.expected_best_figure(curves)))
    return section


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
        reading = (
            f"Among {len(students)} completed student trials, BLiMP tracks "
            f"{figures.PARAM_LABELS[top]} most closely (Spearman ρ = {known[top]:+.2f}); "
            + ", ".join(
                f"{figures.PARAM_LABELS[p]} ρ = {r:+.2f}" for p, r in known.items() if p != top
            )
            + ("." if len(known) > 1 else "that is the only parameter that varied.")
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
            table=_table(
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


def paradigm_section(frames: Frames) -> Section:
    section = Section("paradigms", "5. BLiMP per paradigm and per phenomenon group")
    table, chosen = paradigm_differences(frames)
    section.data["paradigms"] = {"chosen": chosen, "table": table.to_dict(orient="records")}
    if table.empty:
        section.blocks.append(
            Block(
                "No per-paradigm BLiMP results for a completed best student and best teacher are in the "
                "store, so no paradigm-level difference can be shown."
            )
        )
        return section
    para = table[table["level"] == "paradigm"]
    grp = table[table["level"] == "group"]
    sig = para[para["significant"]]
    reading = (
        f"The best student (trial #{chosen['student_number']}) minus the best teacher "
        f"(#{chosen['teacher_number']}), both chosen by dev loss: the student is ahead on "
        f"{int((para['difference'] > 0).sum())} of {len(para)} paradigms; "
        f"{len(sig)} difference(s) survive Benjamini-Hochberg at q < {ALPHA:g} "
        f"({int((sig['difference'] > 0).sum())} in the student's favour), and "
        f"{int(grp['significant'].sum())} of {len(grp)} phenomenon groups do. Cells are "
        "percentage points, ● marks q < 0.05; hover a cell for the paradigm's name."
    )
    section.blocks.append(Block(reading, figure=figures.paradigm_heatmap(table)))
    return section


def _lanes(trials: pd.DataFrame) -> pd.DataFrame:
    """Start/end seconds per trial and a lane per worker so overlapping trials stack."""
    t = trials.dropna(subset=["started_at"]).copy()
    if t.empty:
        return pd.DataFrame(columns=["stage", "number", "status", "node", "start", "end", "lane"])
    start = pd.to_datetime(t["started_at"], utc=True)
    end = pd.to_datetime(t["ended_at"], utc=True)
    latest = max(end.max() if end.notna().any() else start.max(), start.max())
    end = end.fillna(latest)  # a running trial runs until the latest moment the store knows
    origin = start.min()
    t["start"] = (start - origin).dt.total_seconds()
    t["end"] = (end - origin).dt.total_seconds()
    nodes = t["node"].fillna("unknown").astype(str)
    t["node"] = nodes.map(figures.short_node_names(nodes.tolist()))
    lanes = []
    for node, rows in t.sort_values("start").groupby("node", sort=True):
        free_at: list[float] = []
        for idx, r in rows.iterrows():
            slot = next((i for i, f in enumerate(free_at) if f <= r["start"]), None)
            if slot is None:
                free_at.append(r["end"])
                slot = len(free_at) - 1
            else:
                free_at[slot] = r["end"]
            lanes.append((idx, f"{node} · {slot + 1}"))
    t["lane"] = pd.Series(dict(lanes))
    return t[["stage", "number", "status", "node", "start", "end", "lane"]]


def _busy(spans: pd.DataFrame) -> tuple[float, int]:
    """Fraction of (workers × makespan) with at least one trial running, and peak concurrency."""
    makespan = float(spans["end"].max() - spans["start"].min())
    if makespan <= 0:
        return 1.0, len(spans)
    busy = 0.0
    for _, rows in spans.groupby("node"):
        covered, reach = 0.0, -math.inf
        for s, e in sorted(zip(rows["start"], rows["end"], strict=True)):
            if s > reach:
                covered += e - s
                reach = e
            elif e > reach:
                covered += e - reach
                reach = e
        busy += covered
    events = sorted(
        [(s, 1) for s in spans["start"]] + [(e, -1) for e in spans["end"]],
        key=lambda x: (x[0], x[1]),
    )
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return busy / (spans["node"].nunique() * makespan), peak


def _step_curve_blocks(frames: Frames) -> list[Block]:
    """The curves between epochs, where recorded: the train loss (every `tracking.log_every`
    steps) and the dev loss (every `tracking.eval_every` steps, and each epoch's end)."""
    blocks = []
    for name, what in (
        ("train_loss_step", "Train loss every logged optimizer step"),
        ("dev_loss", "Dev loss on the optimizer-step axis (within epochs and at their ends)"),
    ):
        steps = frames.steps
        if steps.empty or not (steps["name"] == name).any():
            continue
        steps = steps[steps["name"] == name]
        per_trial = steps.groupby("trial_id").size()
        if name == "dev_loss" and (per_trial == steps.groupby("trial_id")["epoch"].nunique()).all():
            continue  # one point per epoch: the learning curves above already show it
        stages = [str(s) for s in steps["stage"].unique()]
        reading = (
            f"{what}: {len(steps)} points over {len(per_trial)} trial(s), "
            f"a median of {int(per_trial.median())} per trial."
        )
        blocks.append(Block(reading, figure=figures.step_curves_figure(steps, name, stages)))
    return blocks


def cluster_section(frames: Frames) -> Section:
    section = Section("cluster", "6. Learning curves and the cluster's timeline")
    curves = frames.metrics
    stages = [] if curves.empty else [str(s) for s in curves["stage"].unique()]
    if curves.empty or not (curves["name"] == "dev_loss").any():
        section.blocks.append(
            Block("No learning curves (per-iteration dev loss) are in the store.")
        )
    else:
        parts = []
        for stage in stages:
            c = curves[(curves["stage"] == stage) & (curves["name"] == "dev_loss")]
            if c.empty:
                continue
            ordered = c.sort_values("iteration").groupby("trial_id")["value"]
            parts.append(f"{stage} {ordered.first().median():.3f} → {ordered.last().median():.3f}")
        pruned = int((frames.trials["status"] == "PRUNED").sum())
        reading = (
            "Median dev loss from first to last reported iteration: "
            + "; ".join(parts)
            + f". {pruned} trial(s) were stopped early by the scheduler."
        )
        section.blocks.append(
            Block(
                reading,
                figure=figures.learning_curves_figure(
                    curves,
                    "dev_loss",
                    [
                        s
                        for s in stages
                        if ((curves["stage"] == s) & (curves["name"] == "dev_loss")).any()
                    ],
                ),
            )
        )
    section.blocks.extend(_step_curve_blocks(frames))
    spans = _lanes(frames.trials)
    if spans.empty:
        section.blocks.append(Block("No trial has a start time, so there is no timeline."))
        return section
    busy, peak = _busy(spans)
    makespan = float(spans["end"].max() - spans["start"].min())
    section.data["timeline"] = {
        "busy_fraction": busy,
        "peak_concurrency": peak,
        "workers": int(spans["node"].nunique()),
        "makespan_s": makespan,
    }
    reading = (
        f"{len(spans)} trials ran on {spans['node'].nunique()} worker(s) over "
        f"{makespan / 60:.1f} min; the workers were busy {100 * busy:.0f}% of that time and at "
        f"most {peak} trial(s) ran at once."
    )
    section.blocks.append(Block(reading, figure=figures.timeline_figure(spans)))
    return section


def methods_section(frames: Frames) -> Section:
    info = frames.info
    trials = frames.trials
    seeds = sorted({int(s) for s in trials["seed"].dropna()}) if "seed" in trials else []
    section_sweep = {
        k: info.get(k)
        for k in (
            "sweep",
            "status",
            "config_hash",
            "code_version",
            "created_at",
            "finished_at",
            "n_trials",
        )
    }
    scoring = blimp_scoring(frames.config)
    facts = [
        ("sweep", html.escape(frames.sweep)),
        ("status", html.escape(str(info.get("status", "—")))),
        (
            "config hash (sha256 of the resolved sweep.yaml)",
            f"<code>{html.escape(str(info.get('config_hash', '—')))}</code>",
        ),
        ("code version", f"<code>{html.escape(str(info.get('code_version', '—')))}</code>"),
        (
            "created / finished",
            f"{html.escape(str(info.get('created_at', '—')))} / {html.escape(str(info.get('finished_at', '—')))}",
        ),
        ("trials in the store", str(len(trials))),
        ("seeds used", html.escape(", ".join(str(s) for s in seeds) or "—")),
        ("BLiMP scoring", html.escape(scoring["blimp_convention_text"])),
        ("checkpoint handed on", html.escape(scoring["checkpoint_text"])),
        ("report written", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    facts_html = "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    methods = f"""
<ul>
<li><b>Which split chose what.</b> The dev split (dev loss, nats per token) chose everything:
it is the Optuna objective, the ASHA early-stopping signal, the ensemble's selection metric (unless
the sweep set it to BLiMP) and the config each repeat re-runs. Every reported number, comparison and
curve uses what no choice saw: the held-out test loss (nats per token) and BLiMP (%).
{"<b>This store has no test loss, so its loss numbers are dev loss and optimistic.</b>" if SELECTION_METRIC in reported_metrics(frames) else ""}</li>
<li><b>Verdicts.</b> Each comparison pairs seed repeats by seed (the same seeds on both sides), and
the alpha=1 baselines by the student trial they re-ran. Per metric: a paired t-test (two-sided)
with a 95% t-interval of the mean difference, and P(student better on a seed) with an exact
Clopper-Pearson interval. The tests that can reach significance ({MIN_PAIRS}+ pairs with variance,
BLiMP above the 95% binomial interval of chance on at least one side) form one family, Holm-corrected
at {ALPHA:g}; the rest are descriptive. "better"/"worse" needs the Holm-adjusted p below {ALPHA:g};
where the two configs came out of unequal searches (trial counts, early stopping, epochs) it also
needs the matched-budget comparison of the whole pools (expected best at equal k, permutation test) to
agree. <code>python -m analysis.calibration</code> measures this procedure's false-positive rate and
interval coverage on synthetic null sweeps.</li>
<li><b>BLiMP scoring.</b> {html.escape(scoring["blimp_convention_text"])}. A pair counts as
correct when the good sentence's summed log-probability is at least the bad one's. The model scored
(and handed to the ensemble and GLUE) is {html.escape(scoring["checkpoint_text"])}.</li>
<li><b>Which trials count.</b> Only COMPLETE trials: a pruned trial was stopped early and a failed
one has no final score. Pruned and failed counts are shown beside each group.</li>
<li><b>Groups.</b> teachers and students are the two Optuna sweeps; matched baselines re-run a
student config with alpha = 1 (no distillation); repeats re-run the best teacher and the best
student config with new seeds. The repeated original is not counted among its repeats, because
it was selected as the best and would favour its side.</li>
<li><b>Headline "chosen on dev"</b>: the held-out value of the trial that dev loss picks, never the
best held-out value (which would select on the test split).</li>
<li><b>Interquartile mean (IQM)</b>: the mean of the middle 50% of values (scipy.stats.trim_mean,
0.25 cut), robust to one diverged or lucky trial. Its 95% interval is a percentile bootstrap
(scipy.stats.bootstrap, {N_RESAMPLES} resamples, fixed seed); fewer than {MIN_FOR_CI} values get no interval.</li>
<li><b>Probability of improvement</b> P(student better): the chance that a random student
value beats a random teacher value (higher BLiMP, lower loss), ties counting half (equal to Mann-Whitney U / (n·m)); 0.5 is no
difference. Interval: bootstrap resampling each side independently.</li>
<li><b>Descriptive tests</b>: Welch's t-test (unequal variances) and the Mann-Whitney U test on the
repeat seeds, and the paired t and Wilcoxon signed-rank tests of each student against its matched
baseline (a student with several baselines is compared with their mean). All are two-sided; each
side needs {MIN_FOR_TEST}+ values. Effect sizes: Hedges' g (standardised mean difference),
P(student better) for Mann-Whitney (for a loss, the chance the student's is lower), d_z (mean / sd of the paired differences). The p-values are
descriptive: each is listed with the smallest p it could reach at its n (Mann-Whitney on 2 vs 2
values: 0.33; Wilcoxon on 4 pairs: 0.125), so a large p there is not evidence of no effect.</li>
<li><b>Expected best score after k trials</b> (Dodge et al. 2019, "Show Your Work"): the mean of the
best of k trials drawn with replacement from a sweep's completed trials, exactly from the order
statistics. The band is a pointwise {CONFIDENCE:.0%} percentile bootstrap over the trials; near k = n it
is optimistic, since no resample can exceed the best value seen. If the teacher curve is still rising
at its full budget, the teachers may be under-tuned; if the student curve lies above it at every
equal budget, the gap is not a tuning artefact.</li>
<li><b>Fraction beating the best teacher</b>: completed student trials better than the single best
completed teacher, with a Wilson 95% interval (scipy.stats.binomtest).</li>
<li><b>Hyperparameter importance</b>: Optuna's PED-ANOVA and fANOVA on the stored studies
(<code>{html.escape(frames.sweep)}/teachers</code>, <code>{html.escape(frames.sweep)}/students</code>),
for the objective, dev loss; each study's importances sum to 1. On fewer than {SMALL_SAMPLE} trials they
are hints only.</li>
<li><b>Per paradigm</b>: the best student and best teacher are chosen by dev loss (not BLiMP, so the
paradigms do not pick the models they compare). Each difference is tested with Fisher's exact
test on correct/incorrect counts (conservative: the store keeps accuracies, not per-pair outcomes,
so a paired McNemar test is out of reach), and Benjamini-Hochberg controls the false discovery rate
at {ALPHA:g} across the paradigms and, separately, across the phenomenon groups (● in the heatmap).</li>
<li><b>Rank correlation</b>: Spearman's ρ between a hyperparameter and BLiMP among completed student trials.</li>
</ul>"""
    return Section(
        "methods",
        "7. Methods",
        [Block("", table=Markup(facts_html + methods))],
        {
            "sweep": section_sweep,
            "seeds": seeds,
            "blimp_convention": scoring["blimp_convention"],
            "checkpoint": scoring["checkpoint"],
        },
    )


def blimp_scoring(config: dict[str, Any]) -> dict[str, str]:
    """How the stored sweep scored BLiMP and which epoch's model it handed on.

    A config without `data.blimp_convention` predates the setting: it was scored as no_space.
    """
    data = config.get("data") if isinstance(config, dict) else None
    training = config.get("training") if isinstance(config, dict) else None
    convention = str((data or {}).get("blimp_convention", "no_space"))
    checkpoint = str((training or {}).get("checkpoint", "last"))
    texts = {
        "lm_eval": (
            "lm_eval: lm-evaluation-harness's convention, the sum of the log-probabilities of the "
            'tokens of " " + sentence after the BOS token (comparable with lm-eval and the BabyLM '
            "leaderboard)"
        ),
        "no_space": (
            "no_space: the sum of the log-probabilities of the tokens of the sentence after the "
            "BOS token, without lm-eval's leading space (not directly comparable with lm-eval)"
        ),
    }
    return {
        "blimp_convention": convention,
        "blimp_convention_text": texts.get(convention, convention),
        "checkpoint": checkpoint,
        "checkpoint_text": (
            "the epoch with the best dev loss (checkpoint: best)"
            if checkpoint == "best"
            and (training or {}).get("checkpoint_metric", "dev_loss") == "dev_loss"
            else "the epoch with the best dev loss for teachers and the lowest distillation "
            "objective on dev (alpha CE + (1 - alpha) T^2 KL, the reference's eval loss) for "
            "students (checkpoint: best, checkpoint_metric: dev_distillation_loss)"
            if checkpoint == "best"
            else "the last epoch's (checkpoint: last)"
        ),
    }


SECTIONS = (
    verdict_section,
    headline_section,
    comparison_section,
    expected_best_section,
    sensitivity_section,
    paradigm_section,
    cluster_section,
    methods_section,
)
"""The report's sections, in reading order."""
