"""Report section 6b: what the sweep and distillation cost (analysis.cost)."""

from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis import cost, figures
from analysis.load import Frames
from analysis.sections._format import Block, Section, fmt, html_table

__all__ = ["cost_section"]


def _flops(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def cost_section(frames: Frames) -> Section:
    section = Section("cost", "6b. What it cost: compute per stage and the price of distillation")
    numbers = cost.summary(frames)
    section.data["cost"] = numbers
    unit = numbers["device_unit"]
    stages = cost.stage_costs(frames)
    rows = [
        [
            html.escape(r.stage),
            html.escape(r.kind),
            str(r.trials),
            "—" if r.device_hours is None else f"{r.device_hours:.3g}",
            f"{r.tokens_trained / 1e6:.3g}",
            _flops(r.train_flops)
            + (
                f" <span class='note'>({r.unknown} trial(s) without a count)</span>"
                if r.unknown
                else ""
            ),
            "—"
            if not r.tokens_trained or r.train_flops is None
            else f"{r.train_flops / r.tokens_trained:.3g}",
        ]
        for r in stages.itertuples()
    ]
    hours = stages["device_hours"].dropna()
    total = f"{hours.sum():.3g} {unit}" if len(hours) else "unknown"
    section.blocks.append(
        Block(
            f"The sweep spent {total} in all ({unit}: wall time of each trial times the "
            "devices it held; pruned and failed trials count). Training FLOPs by the standard "
            "count: 6 N per trained token, 2 N per token for each teacher's forward pass, 2 N "
            "per token evaluated (dev and test loss; BLiMP scoring not counted).",
            table=html_table(
                [
                    "stage",
                    "kind",
                    "trials",
                    unit,
                    "tokens trained (M)",
                    "training FLOPs",
                    "FLOPs per trained token",
                ],
                rows,
                key="cost-stages",
            ),
        )
    )
    overheads = numbers["overheads"]
    if overheads:
        rows = [
            [
                html.escape(o.label),
                f"{o.trials} / {o.trials_ref}",
                _ratio(o.measured),
                _ratio(o.whole_trial),
                _ratio(o.flops),
                _ratio(o.ideal),
            ]
            for o in overheads
        ]
        first = overheads[0]
        reading = (
            f"Per trained token, {first.label} took {_ratio(first.measured)} the training-step "
            f"time (median throughputs, evaluation excluded) against a FLOP ideal of "
            f"{_ratio(first.ideal)} ((3 + K) / 3 of a step without teachers, teachers the "
            "student's size); whole trials, start-up and evaluation included, "
            f"{_ratio(first.whole_trial)}. No distillation means the alpha = 1 controls of the "
            "student configs where they ran, else every trial without teachers; only trials of "
            "the student's model size count. Throughput on a shared machine moves with its load."
        )
        section.blocks.append(
            Block(
                reading,
                table=html_table(
                    [
                        "overhead",
                        "trials",
                        "measured (step time per token)",
                        "whole trial (device-s per token)",
                        "counted FLOPs per token",
                        "FLOP ideal (3+K)/(3+K_ref)",
                    ],
                    rows,
                    key="cost-overhead",
                ),
            )
        )
    else:
        section.blocks.append(
            Block(
                "No distilled and undistilled trials finished side by side: no overhead to measure."
            )
        )
    searches = [s for s in numbers["searches"] if s.train_flops is not None]
    if searches:
        parts = []
        for s in searches:
            shown = ", ".join(
                f"{figures.METRIC_LABELS.get(m, m).split(' (')[0]} {fmt(m, v)}"
                for m, v in s.scores.items()
            )
            parts.append(f"{s.stage} ({_flops(s.train_flops)} FLOPs): {shown}")
        section.blocks.append(
            Block(
                "Each search's chosen config (by dev loss) on held-out metrics against the "
                "training FLOPs the whole search spent; a hollow marker adds the teachers' "
                "search a students search needed. " + "; ".join(parts) + ".",
                figure=_quality_figure(searches),
            )
        )
    return section


def _quality_figure(searches: list[cost.SearchCost]) -> go.Figure:
    metrics = list(searches[0].scores)
    fig = make_subplots(
        rows=1, cols=len(metrics), subplot_titles=[figures.METRIC_LABELS.get(m, m) for m in metrics]
    )
    for col, metric in enumerate(metrics, start=1):
        scale = 100.0 if metric == "blimp_overall" else 1.0
        for s in searches:
            value = s.scores.get(metric)
            if value is None:
                continue
            colour = figures.stage_colour(s.stage)
            xs = [s.train_flops] + ([s.with_teachers_flops] if s.with_teachers_flops else [])
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[value * scale] * len(xs),
                    mode="lines+markers",
                    name=s.stage,
                    legendgroup=s.stage,
                    showlegend=col == 1,
                    line={"color": colour, "dash": "dot"},
                    marker={
                        "color": colour,
                        "size": 11,
                        "symbol": ["circle", "circle-open"][: len(xs)],
                    },
                    hovertemplate=f"{s.stage}: %{{y:.4g}} at %{{x:.3g}} FLOPs<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(type="log", title_text="training FLOPs of the search", row=1, col=col)
    fig.update_layout(
        template="plotly_white", height=380, margin={"l": 60, "r": 20, "t": 50, "b": 50}
    )
    return fig
