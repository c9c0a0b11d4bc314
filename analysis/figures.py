"""Plotly figures of the report. SVG traces only (Scatter, Bar, Heatmap) except Parcoords,
so the page draws in any browser; each function takes tidy data and returns a Figure."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.load import HYPERPARAMETERS, METRICS
from analysis.stats import ExpectedBest

# BLiMP is stored as a fraction and shown in % everywhere, tables and axes alike
_SCALE = {"blimp_overall": 100.0}

__all__ = [
    "METRIC_LABELS",
    "STAGE_COLOURS",
    "expected_best_figure",
    "forest_figure",
    "forest_points",
    "importance_figure",
    "learning_curves_figure",
    "paradigm_heatmap",
    "parallel_coordinates",
    "short_node_names",
    "slice_figure",
    "stage_colour",
    "step_curves_figure",
    "timeline_figure",
]

STAGE_COLOURS = {
    "teachers": "#1f77b4",
    "students": "#d62728",
    "baselines": "#7f7f7f",
    "repeats": "#2ca02c",
}
METRIC_LABELS = {
    "blimp_overall": "BLiMP accuracy (%)",
    "test_loss": "test loss (nats/token)",
    "dev_loss": "dev loss (nats/token)",
}
_KIND_SHADES = {
    "teachers": ["#1f77b4", "#17becf", "#aec7e8"],
    "students": ["#d62728", "#ff7f0e", "#9467bd", "#e377c2"],
    "baselines": ["#7f7f7f"],
    "repeats": ["#2ca02c"],
    "reference": ["#8c564b"],
}


def stage_colour(stage: str) -> str:
    """A colour per stage: its kind's hue (students_k1, students_k4 get shades of red)."""
    if stage in STAGE_COLOURS:
        return STAGE_COLOURS[stage]
    for kind, shades in _KIND_SHADES.items():
        if stage.startswith(kind):
            suffix = stage[len(kind) :]
            return shades[sum(map(ord, suffix)) % len(shades)]
    return "#333333"


def short_node_names(nodes: list[str]) -> dict[str, str]:
    """Readable worker names: a 56-character Ray node id becomes "node 1 (a3f9c2)"."""
    out: dict[str, str] = {}
    for node in dict.fromkeys(nodes):
        if len(node) <= 16:
            out[node] = node
        else:
            out[node] = f"node {len(out) + 1} ({node[:6]})"
    return out


PARAM_LABELS = {
    "alpha": "alpha (CE weight)",
    "temperature": "temperature",
    "lr": "learning rate",
    "batch_size": "batch size",
    "weight_decay": "weight decay",
}
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
}


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def expected_best_figure(curves: dict[str, dict[str, ExpectedBest]]) -> go.Figure:
    """Expected best score vs trials, one panel per metric, teachers and students on each.

    `curves[metric][stage]` is the curve of that sweep.
    """
    metrics = list(curves)
    fig = make_subplots(
        rows=1,
        cols=len(metrics),
        subplot_titles=[f"expected best {METRIC_LABELS[m]}" for m in metrics],
    )
    for col, metric in enumerate(metrics, start=1):
        for stage, curve in curves[metric].items():
            if not curve.ks:
                continue
            colour = stage_colour(stage)
            if curve.low is not None and curve.high is not None:
                fig.add_trace(
                    go.Scatter(
                        x=curve.ks + curve.ks[::-1],
                        y=[_SCALE.get(metric, 1.0) * y for y in curve.high + curve.low[::-1]],
                        fill="toself",
                        mode="lines",
                        fillcolor=_rgba(colour, 0.18),
                        line={"width": 0},
                        hoverinfo="skip",
                        name=f"{stage} 95% band",
                        legendgroup=stage,
                        showlegend=col == 1,
                    ),
                    row=1,
                    col=col,
                )
            scale = _SCALE.get(metric, 1.0)
            fig.add_trace(
                go.Scatter(
                    x=curve.ks,
                    y=[scale * y for y in curve.mean],
                    mode="lines+markers",
                    line={"color": colour},
                    name=f"{stage} (n={curve.n})",
                    legendgroup=stage,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="trials (k)", row=1, col=col)
        fig.update_yaxes(title_text=METRIC_LABELS[metric], row=1, col=col)
    fig.update_layout(**_LAYOUT, height=420)
    return fig


def slice_figure(trials: pd.DataFrame, shown: dict[str, bool] | None = None) -> go.Figure:
    """Each reported metric against each swept hyperparameter, one dot per completed trial."""
    params = [p for p in HYPERPARAMETERS if f"param_{p}" in trials.columns]
    metrics = [m for m in (shown or METRICS) if m in trials.columns]
    in_legend: set[str] = set()  # one legend entry per stage, wherever it first appears
    fig = make_subplots(
        rows=len(metrics),
        cols=len(params),
        shared_yaxes=True,
        horizontal_spacing=0.03,
        vertical_spacing=0.12,
    )
    for row, metric in enumerate(metrics, start=1):
        for col, param in enumerate(params, start=1):
            for stage, rows in trials.groupby("stage", sort=False):
                xy = rows[[f"param_{param}", metric, "number"]].dropna(
                    subset=[f"param_{param}", metric]
                )
                if xy.empty:
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=xy[f"param_{param}"],
                        y=_SCALE.get(metric, 1.0) * xy[metric].astype(float),
                        mode="markers",
                        marker={
                            "color": stage_colour(str(stage)),
                            "size": 7,
                            "opacity": 0.75,
                        },
                        name=str(stage),
                        legendgroup=str(stage),
                        showlegend=str(stage) not in in_legend,
                        customdata=xy["number"],
                        hovertemplate=f"trial %{{customdata}}<br>{param}=%{{x}}<br>"
                        f"{metric}=%{{y:.4f}}<extra>{stage}</extra>",
                    ),
                    row=row,
                    col=col,
                )
                in_legend.add(str(stage))
            if row == len(metrics):
                fig.update_xaxes(title_text=PARAM_LABELS.get(param, param), row=row, col=col)
            if param in ("lr",):
                fig.update_xaxes(type="log", row=row, col=col)
        fig.update_yaxes(title_text=METRIC_LABELS[metric], row=row, col=1)
    fig.update_layout(**_LAYOUT, height=300 * max(len(metrics), 1))
    return fig


def parallel_coordinates(students: pd.DataFrame, shown: dict[str, bool] | None = None) -> go.Figure:
    """Student trials across their hyperparameters and both metrics, coloured by BLiMP."""
    dims = []
    for p in ("lr", "batch_size", "weight_decay", "alpha", "temperature"):
        col = f"param_{p}"
        # a parameter the sweep held fixed is no axis worth drawing
        if col in students.columns and students[col].notna().all() and students[col].nunique() > 1:
            values = students[col].astype(float)
            label = PARAM_LABELS.get(p, p)
            if p == "lr":
                values, label = np.log10(values), "log10 learning rate"
            dims.append({"label": label, "values": values.tolist()})
    for m in shown or METRICS:
        if m in students.columns and students[m].notna().all():
            values = (_SCALE.get(m, 1.0) * students[m].astype(float)).tolist()
            dims.append({"label": METRIC_LABELS[m], "values": values})
    colour = (
        (100 * students["blimp_overall"].astype(float)).tolist()
        if "blimp_overall" in students.columns and students["blimp_overall"].notna().all()
        else students["number"].astype(float).tolist()
    )
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            line={
                "color": colour,
                "colorscale": "Viridis",
                "showscale": True,
                "colorbar": {"title": {"text": "BLiMP (%)"}},
            },
        )
    )
    fig.update_layout(**{**_LAYOUT, "margin": {"l": 80, "r": 80, "t": 60, "b": 30}}, height=420)
    return fig


def importance_figure(importances: pd.DataFrame) -> go.Figure:
    """Grouped bars: importance of each hyperparameter per (study, evaluator)."""
    fig = go.Figure()
    for (study, evaluator), rows in importances.groupby(["study", "evaluator"], sort=False):
        fig.add_trace(go.Bar(x=rows["param"], y=rows["importance"], name=f"{study} · {evaluator}"))
    fig.update_layout(
        **_LAYOUT, barmode="group", height=380, yaxis_title="importance for dev loss (sums to 1)"
    )
    return fig


def paradigm_heatmap(table: pd.DataFrame) -> go.Figure:
    """Best student minus best teacher, BLiMP percentage points: one row per paradigm, named,
    under a row for its phenomenon group's total; ● marks BH q < 0.05."""
    rows: list[tuple[str, pd.Series]] = []
    for g in sorted(table["group"].unique()):
        whole = table[(table["group"] == g) & (table["level"] == "group")]
        if not whole.empty:
            rows.append((f"<b>{g}</b> (whole group)", whole.iloc[0]))
        paradigms = table[(table["group"] == g) & (table["level"] == "paradigm")]
        rows += [(f"{r['task']}", r) for _, r in paradigms.sort_values("task").iterrows()]
    z = np.array([[100 * r["difference"]] for _, r in rows], dtype=float).reshape(-1, 1)
    text = np.array(
        [[f"{100 * r['difference']:+.1f}" + (" ●" if r["significant"] else "")] for _, r in rows],
        dtype=object,
    ).reshape(-1, 1)
    hover = np.array(
        [
            [
                f"{r['group']}<br>{r['task']}<br>student {100 * r['student']:.1f}% vs "
                f"teacher {100 * r['teacher']:.1f}%<br>diff {100 * r['difference']:+.1f} pp, "
                f"p={r['p']:.3g}, BH q={r['q']:.3g}"
            ]
            for _, r in rows
        ],
        dtype=object,
    ).reshape(-1, 1)
    bound = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=["student − teacher (pp)"],
            y=[label for label, _ in rows],
            text=text,
            texttemplate="%{text}",
            customdata=hover,
            hovertemplate="%{customdata}<extra></extra>",
            colorscale="RdBu",
            zmid=0,
            zmin=-bound,
            zmax=bound,
            colorbar={"title": {"text": "pp"}},
            xgap=2,
            ygap=2,
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_layout(
        **{**_LAYOUT, "margin": {"l": 320, "r": 20, "t": 30, "b": 40}},
        height=120 + 20 * len(rows),
    )
    return fig


def learning_curves_figure(metrics: pd.DataFrame, name: str, stages: list[str]) -> go.Figure:
    """One panel per stage, one line per trial (joined with gaps into one trace per stage)."""
    fig = make_subplots(rows=1, cols=len(stages), subplot_titles=stages, shared_yaxes=True)
    curves = metrics[metrics["name"] == name]
    for col, stage in enumerate(stages, start=1):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for _, trial in curves[curves["stage"] == stage].groupby("trial_id", sort=False):
            trial = trial.sort_values("iteration")
            xs += [*trial["iteration"].astype(float).tolist(), None]
            ys += [*trial["value"].astype(float).tolist(), None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                connectgaps=False,
                line={"color": stage_colour(stage), "width": 1},
                marker={"size": 4},
                opacity=0.7,
                name=stage,
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="iteration (epoch)", dtick=1, row=1, col=col)
    fig.update_yaxes(title_text=METRIC_LABELS.get(name, name), row=1, col=1)
    fig.update_layout(title_text=f"{METRIC_LABELS.get(name, name)}: the selection split, per epoch")
    fig.update_layout(**_LAYOUT, height=360)
    return fig


_STEP_CURVES = {
    "train_loss_step": ("train loss", "train loss (CE, plus KL for students), every logged step"),
    "dev_loss": ("dev loss", "dev loss within and at the end of epochs"),
}


def step_curves_figure(steps: pd.DataFrame, name: str, stages: list[str]) -> go.Figure:
    """Within-epoch curves: one panel per stage, one line per trial, x = optimizer step."""
    label, title = _STEP_CURVES.get(name, (name, name))
    fig = make_subplots(rows=1, cols=len(stages), subplot_titles=stages, shared_yaxes=True)
    curves = steps[steps["name"] == name]
    for col, stage in enumerate(stages, start=1):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for _, trial in curves[curves["stage"] == stage].groupby("trial_id", sort=False):
            trial = trial.sort_values("step")
            xs += [*trial["step"].astype(float).tolist(), None]
            ys += [*trial["value"].astype(float).tolist(), None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                connectgaps=False,
                line={"color": stage_colour(stage), "width": 1},
                opacity=0.6,
                name=stage,
                showlegend=False,
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="optimizer step", row=1, col=col)
    fig.update_yaxes(title_text=label, row=1, col=1)
    fig.update_layout(title_text=title)
    fig.update_layout(**_LAYOUT, height=360)
    return fig


def timeline_figure(spans: pd.DataFrame) -> go.Figure:
    """Horizontal bars from start to end of each trial, one row per worker slot (short names)."""
    fig = go.Figure()
    for stage, rows in spans.groupby("stage", sort=False):
        fig.add_trace(
            go.Bar(
                base=rows["start"].tolist(),
                x=(rows["end"] - rows["start"]).tolist(),
                y=rows["lane"].tolist(),
                orientation="h",
                marker={
                    "color": stage_colour(str(stage)),
                    "opacity": 0.8,
                    "line": {"color": "white", "width": 1},
                },
                name=str(stage),
                customdata=rows[["number", "status"]].to_numpy(),
                hovertemplate="trial %{customdata[0]} (%{customdata[1]})<br>"
                "%{base:.0f}s to %{x:.0f}s long<extra>" + str(stage) + "</extra>",
            )
        )
    fig.update_layout(
        **_LAYOUT,
        barmode="overlay",
        height=160 + 30 * spans["lane"].nunique(),
        xaxis_title="seconds since the sweep's first trial started",
    )
    fig.update_yaxes(type="category", categoryorder="category descending")
    return fig


VERDICT_COLOURS = {"better": "#176f2c", "worse": "#b1191d", "inconclusive": "#6b6b6b"}
FOREST_UNITS = {"blimp_overall": "BLiMP, pp", "test_loss": "test loss, nats/token"}


def forest_points(rows: list[dict[str, Any]], metric: str) -> dict[str, list[Any]]:
    """One metric's points of the forest plot: label, difference and interval per comparison,
    in the units the plot shows (BLiMP in pp), None where a comparison has no difference."""
    scale = _SCALE.get(metric, 1.0)
    out: dict[str, list[Any]] = {"label": [], "x": [], "low": [], "high": [], "verdict": []}
    for r in rows:
        cell = r["metrics"].get(metric) or {}
        d, lo, hi = cell.get("difference"), cell.get("low"), cell.get("high")
        out["label"].append(r["short_label"])
        out["x"].append(None if d is None else d * scale)
        out["low"].append(None if lo is None else lo * scale)
        out["high"].append(None if hi is None else hi * scale)
        out["verdict"].append(cell.get("verdict", "inconclusive"))
    return out


def forest_figure(rows: list[dict[str, Any]], metrics: list[str]) -> go.Figure:
    """Every comparison's seed-paired difference (student minus other) with its 95% interval,
    one panel per metric side by side, and the zero line. A loss is drawn as it is: negative
    means the student's loss is lower (better)."""
    fig = make_subplots(
        rows=1,
        cols=len(metrics),
        shared_yaxes=True,
        horizontal_spacing=0.06,
        subplot_titles=[FOREST_UNITS.get(m, METRIC_LABELS.get(m, m)) for m in metrics],
    )
    for j, m in enumerate(metrics, start=1):
        pts = forest_points(rows, m)
        plus = [
            None if x is None or h is None else h - x
            for x, h in zip(pts["x"], pts["high"], strict=True)
        ]
        minus = [
            None if x is None or lo is None else x - lo
            for x, lo in zip(pts["x"], pts["low"], strict=True)
        ]
        fig.add_trace(
            go.Scatter(
                x=pts["x"],
                y=pts["label"],
                mode="markers",
                name=FOREST_UNITS.get(m, m),
                marker={"size": 10, "color": [VERDICT_COLOURS[v] for v in pts["verdict"]]},
                error_x={"type": "data", "array": plus, "arrayminus": minus, "thickness": 1.5},
                customdata=list(zip(pts["low"], pts["high"], pts["verdict"], strict=True)),
                hovertemplate="%{y}<br>%{x:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
                "<br>%{customdata[2]}<extra></extra>",
                meta=m,
                showlegend=False,
            ),
            row=1,
            col=j,
        )
        fig.add_vline(x=0, line={"color": "#333", "width": 1, "dash": "dot"}, row=1, col=j)
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_layout(
        meta="forest",
        height=140 + 40 * max(len(rows), 1),
        margin={"l": 10, "r": 10, "t": 40, "b": 30},
        template="plotly_white",
    )
    return fig
