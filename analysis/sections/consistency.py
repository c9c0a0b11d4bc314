"""Report section 4b: is performance more consistent across configurations (analysis.consistency)?"""

from __future__ import annotations

import html

import plotly.graph_objects as go
from markupsafe import Markup
from plotly.subplots import make_subplots

from analysis import figures
from analysis.consistency import (
    ALPHA,
    MIN_CONFIGS,
    ConsistencyVerdict,
    consistency_verdicts,
    fmt_spread,
)
from analysis.load import Frames
from analysis.sections._format import Block, Section, fmt_p, html_table

__all__ = ["consistency_section"]


def consistency_section(frames: Frames) -> Section:
    section = Section("consistency", "4b. Consistency across hyperparameter configurations")
    found = consistency_verdicts(frames)
    section.data["consistency"] = found
    section.data["consistency_lines"] = [v.line for v in found]
    if not found:
        section.blocks.append(
            Block(
                "No consistency comparison: the store has no students stage with a teachers "
                "stage (or a K=1 students stage) to compare its spread with."
            )
        )
        return section
    items = "".join(
        f"<li class='consistency-verdict verdict-{v.verdict.replace(' ', '-')}' "
        f"data-comparison='{html.escape(v.comparison)}'>{html.escape(v.line)}</li>"
        for v in found
    )
    section.blocks.append(
        Block(
            "Does distillation make the result depend less on the hyperparameters? Each search's "
            "spread over its configs: median absolute deviation (MAD) and interquartile range "
            f"(IQR); Brown-Forsythe's test of equal spread (valid for unequal pools), Holm "
            f"across the metrics of a comparison at {ALPHA:g}; a verdict needs {MIN_CONFIGS}+ "
            "configs per search. Chosen on nothing: every config counts.",
            table=Markup(f"<ul class='consistency-verdicts'>{items}</ul>"),
        )
    )
    rows = []
    for v in found:
        for m in v.metrics:
            margin = fmt_spread(m.metric, m.margin)
            rows.append(
                [
                    html.escape(v.comparison),
                    html.escape(figures.METRIC_LABELS.get(m.metric, m.metric)),
                    html.escape(m.basis),
                    f"{m.n_student} / {m.n_other}",
                    f"{fmt_spread(m.metric, m.mad_student)} / {fmt_spread(m.metric, m.mad_other)}",
                    f"{fmt_spread(m.metric, m.iqr_student)} / {fmt_spread(m.metric, m.iqr_other)}",
                    f"{_share(m.within_margin_student)} / {_share(m.within_margin_other)} "
                    f"<span class='note'>(within {margin})</span>",
                    fmt_p(m.p),
                    fmt_p(m.p_holm),
                    html.escape(m.verdict),
                ]
            )
    header = ["comparison", "metric", "read on", "configs (student / other)", "MAD", "IQR"]
    header += ["share near the best", "Brown-Forsythe p", "Holm p", "verdict"]
    section.blocks.append(
        Block(
            "Student side first in every cell. A smaller MAD and IQR and a larger share of "
            "configs near the pool's best mean the search's outcome depends less on which "
            "config it happened to try.",
            table=html_table(header, rows, key="consistency"),
        )
    )
    section.blocks.append(
        Block(
            "The values each test read (a dot per config, like for like as the table says): "
            "the narrower a search's cloud, the more consistent it is across its "
            "hyperparameters.",
            figure=_spread_figure(found),
        )
    )
    return section


def _share(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def _spread_figure(found: list[ConsistencyVerdict]) -> go.Figure:
    """One panel per comparison and metric: both searches' values, box and points."""
    panels = [(v, m) for v in found for m in v.metrics]
    cols = max(len(v.metrics) for v in found)
    fig = make_subplots(
        rows=len(found),
        cols=cols,
        subplot_titles=[
            f"{v.comparison}: {figures.METRIC_LABELS.get(m.metric, m.metric)}" for v, m in panels
        ],
    )
    shown: set[str] = set()
    for row, v in enumerate(found, start=1):
        for col, m in enumerate(v.metrics, start=1):
            scale = 100.0 if m.metric == "blimp_overall" else 1.0
            for stage, values in ((v.other, m.values_other), (v.student, m.values_student)):
                fig.add_trace(
                    go.Box(
                        y=[x * scale for x in values],
                        name=stage,
                        boxpoints="all",
                        jitter=0.4,
                        pointpos=0,
                        marker={"color": figures.stage_colour(stage)},
                        showlegend=stage not in shown,
                        legendgroup=stage,
                    ),
                    row=row,
                    col=col,
                )
                shown.add(stage)
    fig.update_layout(
        template="plotly_white",
        height=120 + 300 * len(found),
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    return fig
