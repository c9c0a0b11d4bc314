"""The robustness report: one self-contained HTML file answering "does the ensemble-distilled
student beat its teachers, and robustly?" from the store alone.

Each section is built from Frames into blocks (a figure or a table, each with a one-sentence
reading computed from the data); `render_report` lays them out with plotly.js inlined once,
so the page opens offline. A machine-readable copy of every headline number is embedded as
JSON (`<script id="report-data">`) for tests and scripts.

    >>> from analysis import write_report
    >>> write_report("sqlite:///demo.db", Path("report.html"), sweep="demo")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import math
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from scipy import stats

from analysis import figures
from analysis.headline import (
    headline_table,
    paradigm_differences,
    student_vs_teacher,
    students_beating_best_teacher,
)
from analysis.importance import hyperparameter_importances
from analysis.load import GROUPS, HYPERPARAMETERS, METRICS, STAGES, Frames, finished, load_frames
from analysis.stats import (
    CONFIDENCE,
    MIN_FOR_CI,
    MIN_FOR_TEST,
    N_RESAMPLES,
    Estimate,
    ExpectedBest,
    TestResult,
    expected_best_curve,
)

if TYPE_CHECKING:
    from sweep.store import Store

__all__ = ["Block", "Section", "build_sections", "glue_table", "render_report", "write_report"]

ALPHA = 0.05
"""Significance level of every test and of the BH false discovery rate."""


@dataclass
class Block:
    """A figure or an HTML table with the sentence that reads it."""

    reading: str
    figure: go.Figure | None = None
    table: str | None = None


@dataclass
class Section:
    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)


# ---------------------------------------------------------------- formatting


def fmt(metric: str, value: float | None) -> str:
    """BLiMP as a percentage, dev loss with four decimals; None as a dash."""
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
    return f"<table class='numbers' data-table='{key}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Estimate | ExpectedBest | TestResult):
        return _jsonable(asdict(value))
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value


# ---------------------------------------------------------------- sections


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with missing values as None (pandas turns None into NaN in float columns)."""
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _headline_section(frames: Frames, summary: dict[str, Any]) -> Section:
    table = headline_table(frames)
    records = _records(table)
    summary["headline"] = records
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
        for m in METRICS:
            est = Estimate(
                r[f"{m}_iqm"], r[f"{m}_iqm_low"], r[f"{m}_iqm_high"], r[f"{m}_n"], r[f"{m}_note"]
            )
            cells += [fmt(m, r[f"{m}_best"]), fmt(m, r[f"{m}_mean"]), fmt_interval(est, m)]
        rows.append(cells)
    header = ["group", "completed trials", "configs", "seeds"]
    for m in METRICS:
        label = figures.METRIC_LABELS[m]
        header += [f"{label}: best", f"{label}: mean", f"{label}: IQM [95% CI]"]
    by_group = {r["group"]: r for r in records}
    t, s = by_group["teachers"], by_group["students"]
    sentences = []
    for m, higher in METRICS.items():
        label = figures.METRIC_LABELS[m]
        if t[f"{m}_n"] == 0 or s[f"{m}_n"] == 0:
            sentences.append(
                f"No {label} comparison is possible yet: {t[f'{m}_n']} completed teacher and "
                f"{s[f'{m}_n']} completed student trial(s) carry it."
            )
            continue
        better = (s[f"{m}_best"] > t[f"{m}_best"]) if higher else (s[f"{m}_best"] < t[f"{m}_best"])
        word = (
            "better than"
            if better
            else ("equal to" if s[f"{m}_best"] == t[f"{m}_best"] else "worse than")
        )
        sentence = (
            f"The best student's {label} ({fmt(m, s[f'{m}_best'])}) is {word} the best teacher's "
            f"({fmt(m, t[f'{m}_best'])}); interquartile means are {fmt(m, s[f'{m}_iqm'])} for "
            f"{s[f'{m}_n']} student and {fmt(m, t[f'{m}_iqm'])} for {t[f'{m}_n']} teacher trials"
        )
        if s[f"{m}_iqm_low"] is not None and t[f"{m}_iqm_low"] is not None:
            overlap = (
                s[f"{m}_iqm_low"] <= t[f"{m}_iqm_high"] and t[f"{m}_iqm_low"] <= s[f"{m}_iqm_high"]
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
    block = Block(" ".join(sentences), table=_table(header, rows, key="headline"))
    section = Section("headline", "1. Headline: every group at a glance", [block])
    glue = glue_table(frames)
    summary["glue"] = glue.to_dict(orient="records")
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
    for key, label, _ in GROUPS:
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


def _comparison_section(frames: Frames, summary: dict[str, Any]) -> Section:
    comp = student_vs_teacher(frames)
    section = Section("comparison", "2. Student against teacher")
    # probability of improvement
    rows, sentences = [], []
    for r in comp.improvement:
        m, est = r["metric"], r["estimate"]
        rows.append(
            [
                html.escape(r["scope"]),
                figures.METRIC_LABELS[m],
                f"{r['n_student']} vs {r['n_teacher']}",
                fmt_interval(est),
            ]
        )
        if m == "blimp_overall":
            if est.value is None:
                sentences.append(
                    f"Over {r['scope']}, P(student > teacher) cannot be estimated: "
                    f"{r['n_student']} student and {r['n_teacher']} teacher values."
                )
            else:
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
            " ".join(sentences) + " 0.5 means no difference; for dev loss, 'better' means lower.",
            table=_table(
                ["scope", "metric", "student vs teacher values", "P(student better) [95% CI]"],
                rows,
                key="improvement",
            ),
        )
    )
    # headline tests, Holm-corrected
    rows = []
    for t in comp.tests:
        rows.append(
            [
                html.escape(t.comparison),
                figures.METRIC_LABELS[t.metric],
                t.name,
                f"{t.n_a} vs {t.n_b}",
                fmt_diff(t.metric, t.difference),
                f"{t.effect_name} = {fmt_num(t.effect)}" if t.effect is not None else "—",
                fmt_p(t.p_value),
                fmt_p(t.p_holm),
                html.escape(t.note) if t.note else ("yes" if (t.p_holm or 1) < ALPHA else "no"),
            ]
        )
    ran = [t for t in comp.tests if t.p_value is not None]
    rejected = [t for t in ran if t.p_holm is not None and t.p_holm < ALPHA]
    if not ran:
        reasons = sorted({t.note for t in comp.tests if t.note})
        reading = (
            "No headline test could run, so nothing about significance can be concluded: "
            + "; ".join(reasons)
            + "."
        )
    else:
        verb = "rejects" if len(rejected) == 1 else "reject"
        reading = (
            f"{len(rejected)} of the {len(ran)} headline tests that could run {verb} 'no "
            f"difference' at {ALPHA:g} after Holm correction"
        )
        if rejected:
            reading += ": " + "; ".join(
                f"{t.name} on {figures.METRIC_LABELS[t.metric]} ({t.comparison}, difference "
                f"{fmt_diff(t.metric, t.difference)})"
                for t in rejected
            )
        skipped = len(comp.tests) - len(ran)
        reading += f" ({skipped} could not run: see the last column)." if skipped else "."
    if comp.notes:
        reading += " Note: " + "; ".join(comp.notes) + "."
    section.blocks.append(
        Block(
            reading,
            table=_table(
                [
                    "comparison",
                    "metric",
                    "test",
                    "n",
                    "difference (student − other)",
                    "effect size",
                    "p",
                    "p (Holm)",
                    "significant at 0.05 after Holm",
                ],
                rows,
                key="tests",
            ),
        )
    )
    # matched baselines
    pairs = comp.pairs.table
    if pairs.empty:
        reading = (
            "No completed student trial has a completed matched baseline (same config, "
            "alpha=1), so the effect of distillation itself cannot be isolated."
        )
        section.blocks.append(Block(reading))
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
            + [fmt(m, r[f"{m}_{side}"]) for m in METRICS for side in ("student", "baseline")]
            for r in pairs.to_dict(orient="records")
        ]
        header = ["student trial", "baselines"] + [
            f"{figures.METRIC_LABELS[m]}: {side}"
            for m in METRICS
            for side in ("student", "baseline")
        ]
        section.blocks.append(Block(reading, table=_table(header, rows, key="baselines")))
    summary["improvement"] = comp.improvement
    summary["tests"] = comp.tests
    summary["baseline_pairs"] = pairs.to_dict(orient="records")
    return section


def _expected_best_section(frames: Frames, summary: dict[str, Any]) -> Section:
    section = Section("expected_best", "3. Expected best score against number of trials")
    curves: dict[str, dict[str, ExpectedBest]] = {}
    for m, higher in METRICS.items():
        curves[m] = {}
        for stage in ("teachers", "students"):
            done = finished(frames.stage(stage))
            values = (
                pd.to_numeric(done[m], errors="coerce") if m in done else pd.Series(dtype=float)
            )
            curves[m][stage] = expected_best_curve(values.to_numpy(dtype=float), higher=higher)
    summary["expected_best"] = curves
    t, s = curves["blimp_overall"]["teachers"], curves["blimp_overall"]["students"]
    if t.n == 0 or s.n == 0:
        section.blocks.append(
            Block(
                f"The curves need completed trials with BLiMP in both sweeps; the teacher sweep has "
                f"{t.n} and the student sweep {s.n}, so whether better-tuned teachers would close the "
                "gap cannot be judged."
            )
        )
        if t.n or s.n:
            section.blocks[-1].figure = figures.expected_best_figure(curves)
        return section
    k = min(t.n, s.n)
    above = sum(sm > tm for sm, tm in zip(s.mean[:k], t.mean[:k], strict=True))
    reading = (
        f"With {k} trial(s) each, the expected best BLiMP is {fmt('blimp_overall', s.mean[k - 1])} "
        f"for students against {fmt('blimp_overall', t.mean[k - 1])} for teachers; the student "
        f"curve is above the teacher curve at {above} of {k} budgets."
    )
    if t.low is not None and s.low is not None and t.high is not None and s.high is not None:
        overlap = s.low[k - 1] <= t.high[k - 1] and t.low[k - 1] <= s.high[k - 1]
        reading += (
            " At that budget the 95% bands " + ("overlap" if overlap else "do not overlap") + "."
        )
    else:
        reading += (
            f" Bands need {MIN_FOR_CI}+ trials per sweep ({t.n} teachers, {s.n} students), "
            "so whether better-tuned teachers would close the gap cannot be judged yet."
        )
    if t.n >= 2:
        half = math.ceil(t.n / 2)
        gain = t.mean[-1] - t.mean[half - 1]
        reading += (
            f" Doubling the teacher budget from {half} to {t.n} trials raises the teachers' "
            f"expected best by {fmt_diff('blimp_overall', gain)}, "
            + ("less than" if abs(gain) < abs(s.mean[k - 1] - t.mean[k - 1]) else "at least")
            + " the student-teacher gap at equal budget."
        )
    section.blocks.append(Block(reading, figure=figures.expected_best_figure(curves)))
    return section


def _spearman(x: pd.Series, y: pd.Series) -> float | None:
    both = pd.concat([x, y], axis=1).dropna()
    if len(both) < MIN_FOR_CI or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
        return None
    rho = stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic
    return float(rho) if np.isfinite(rho) else None


def _sensitivity_section(frames: Frames, summary: dict[str, Any]) -> Section:
    section = Section("sensitivity", "4. Sensitivity to the hyperparameters")
    done = finished(frames.trials[frames.trials["stage"].isin(["teachers", "students"])])
    students = finished(frames.stage("students"))
    # slices
    rhos = {
        p: _spearman(
            students.get(f"param_{p}", pd.Series(dtype=float)),
            students.get("blimp_overall", pd.Series(dtype=float)),
        )
        for p in HYPERPARAMETERS
    }
    summary["spearman_blimp_students"] = rhos
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
        section.blocks.append(Block(reading, figure=figures.slice_figure(done)))
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
        section.blocks.append(Block(reading, figure=figures.parallel_coordinates(students)))
    else:
        section.blocks.append(
            Block(
                f"A parallel-coordinates plot needs 2+ completed student trials with BLiMP; there are "
                f"{len(students)}."
            )
        )
    # importances
    imp, notes = hyperparameter_importances(frames.storage_url, frames.sweep)
    summary["importances"] = imp.to_dict(orient="records")
    summary["importance_notes"] = notes
    parts = []
    for (study, evaluator), rows in imp.groupby(["study", "evaluator"], sort=False):
        top = rows.sort_values("importance", ascending=False).iloc[0]
        parts.append(
            f"{evaluator} ranks {top['param']} first for {study} ({top['importance']:.2f})"
        )
    reading = ("; ".join(parts) + ". " if parts else "No importance could be computed. ") + (
        "Not shown: " + "; ".join(notes) + "." if notes else ""
    )
    section.blocks.append(
        Block(reading.strip(), figure=figures.importance_figure(imp) if parts else None)
    )
    # fraction of student configs beating the best teacher
    beat = students_beating_best_teacher(frames)
    summary["students_beating_best_teacher"] = beat
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
                f"{figures.METRIC_LABELS[m]} of {fmt(m, r['best_teacher'])}."
            )
    section.blocks.append(
        Block(
            " ".join(sentences),
            table=_table(
                [
                    "metric",
                    "best teacher",
                    "student trials that beat it",
                    "fraction [95% Wilson CI]",
                ],
                rows,
                key="beating",
            ),
        )
    )
    return section


def _paradigm_section(frames: Frames, summary: dict[str, Any]) -> Section:
    section = Section("paradigms", "5. BLiMP per paradigm and per phenomenon group")
    table, chosen = paradigm_differences(frames)
    summary["paradigms"] = {"chosen": chosen, "table": table.to_dict(orient="records")}
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
    t["node"] = t["node"].fillna("unknown").astype(str)
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


def _cluster_section(frames: Frames, summary: dict[str, Any]) -> Section:
    section = Section("cluster", "6. Learning curves and the cluster's timeline")
    curves = frames.metrics
    stages = [s for s in STAGES if not curves.empty and (curves["stage"] == s).any()]
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
    spans = _lanes(frames.trials)
    if spans.empty:
        section.blocks.append(Block("No trial has a start time, so there is no timeline."))
        return section
    busy, peak = _busy(spans)
    makespan = float(spans["end"].max() - spans["start"].min())
    summary["timeline"] = {
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


def _methods_section(frames: Frames, summary: dict[str, Any]) -> Section:
    info = frames.info
    trials = frames.trials
    seeds = sorted({int(s) for s in trials["seed"].dropna()}) if "seed" in trials else []
    summary["sweep"] = {
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
    summary["seeds"] = seeds
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
        ("report written", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    facts_html = "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    methods = f"""
<ul>
<li><b>Which trials count.</b> Only COMPLETE trials: a pruned trial was stopped early and a failed
one has no final score. Pruned and failed counts are shown beside each group.</li>
<li><b>Groups.</b> teachers and students are the two Optuna sweeps; matched baselines re-run a
student config with alpha = 1 (no distillation); repeats re-run the best teacher and the best
student config with new seeds. The repeated original is not counted among its repeats, because
it was selected as the best and would favour its side.</li>
<li><b>Interquartile mean (IQM)</b>: the mean of the middle 50% of values (scipy.stats.trim_mean,
0.25 cut), robust to one diverged or lucky trial. Its 95% interval is a percentile bootstrap
(scipy.stats.bootstrap, {N_RESAMPLES} resamples, fixed seed); fewer than {MIN_FOR_CI} values get no interval.</li>
<li><b>Probability of improvement</b> P(student &gt; teacher): the chance that a random student
value beats a random teacher value, ties counting half (equal to Mann-Whitney U / (n·m)); 0.5 is no
difference. Interval: bootstrap resampling each side independently.</li>
<li><b>Headline tests</b>: Welch's t-test (unequal variances) and the Mann-Whitney U test on the
repeat seeds, and the paired t and Wilcoxon signed-rank tests of each student against its matched
baseline (a student with several baselines is compared with their mean). All are two-sided; each
side needs {MIN_FOR_TEST}+ values. Effect sizes: Hedges' g (standardised mean difference),
P(a&gt;b) for Mann-Whitney, d_z (mean / sd of the paired differences). The p-values are
Holm-corrected together, controlling the chance of any false claim at {ALPHA:g}.</li>
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
for the objective, dev loss; each study's importances sum to 1.</li>
<li><b>Per paradigm</b>: the best student and best teacher are chosen by dev loss (not BLiMP, so the
paradigms do not pick the models they compare). Each difference is tested with Fisher's exact
test on correct/incorrect counts (conservative: the store keeps accuracies, not per-pair outcomes,
so a paired McNemar test is out of reach), and Benjamini-Hochberg controls the false discovery rate
at {ALPHA:g} across the paradigms and, separately, across the phenomenon groups (● in the heatmap).</li>
<li><b>Rank correlation</b>: Spearman's ρ between a hyperparameter and BLiMP among completed student trials.</li>
</ul>"""
    return Section("methods", "7. Methods", [Block("", table=facts_html + methods)])


def build_sections(frames: Frames) -> tuple[list[Section], dict[str, Any]]:
    """Every section of the report, and the numbers behind them (JSON-able)."""
    summary: dict[str, Any] = {"sweep_name": frames.sweep}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy on degenerate resamples
        sections = [
            _headline_section(frames, summary),
            _comparison_section(frames, summary),
            _expected_best_section(frames, summary),
            _sensitivity_section(frames, summary),
            _paradigm_section(frames, summary),
            _cluster_section(frames, summary),
            _methods_section(frames, summary),
        ]
    return sections, summary


# ---------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
p.reading { background: #f6f8fa; border-left: 4px solid #4a7; padding: 0.5em 0.8em; }
table.numbers { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
table.numbers th, table.numbers td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; }
table.numbers th { background: #f0f0f0; }
.note { color: #777; font-size: 0.9em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: bold; }
"""


def render_report(frames: Frames) -> str:
    """The whole report as one HTML string (plotly.js inlined once, so it opens offline)."""
    sections, summary = build_sections(frames)
    body: list[str] = []
    n_figure = 0
    for section in sections:
        body.append(f"<section id='{section.key}'><h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if block.figure is not None:
                n_figure += 1
                body.append(
                    block.figure.to_html(
                        full_html=False,
                        include_plotlyjs=False,
                        div_id=f"figure-{n_figure}",
                        config={"displaylogo": False, "responsive": True},
                    )
                )
            if block.table is not None:
                body.append(block.table)
            if block.reading:
                body.append(f"<p class='reading'>{html.escape(block.reading)}</p>")
        body.append("</section>")
    data = json.dumps(_jsonable(summary), allow_nan=False, default=str).replace("</", "<\\/")
    title = f"babysweep report: {html.escape(frames.sweep)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{_CSS}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
</head><body>
<h1>{title}</h1>
<p>Does the ensemble-distilled student beat its teachers, and robustly? Every number below is
computed from the sweep store; section 7 says what each statistic means.</p>
{"".join(body)}
<script type="application/json" id="report-data">{data}</script>
</body></html>
"""


def write_report(store: Store | str, out: Path, *, sweep: str | None = None) -> Path:
    """Read one sweep from the store and write the report to `out` (written whole or not at all).

    Raises StoreError for an empty store or an unknown sweep name.
    """
    frames = load_frames(store, sweep)
    page = render_report(frames)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is a file people share
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
