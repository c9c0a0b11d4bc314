"""What every section shares: its dataclasses, number formats and the HTML table."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from markupsafe import Markup

from analysis import figures
from analysis.load import PERCENT_METRICS
from analysis.stats import Estimate


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


def fmt(metric: str, value: float | None) -> str:
    """BLiMP as a percentage, a loss in nats per token with four decimals; None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if metric in PERCENT_METRICS:
        return f"{100 * value:.2f}%"
    return f"{value:.4f}"


def fmt_diff(metric: str, value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    if metric in PERCENT_METRICS:
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


def seeds_text(seeds: list[int]) -> str:
    if not seeds:
        return "—"
    if len(seeds) <= 8:
        return ", ".join(str(s) for s in seeds)
    return f"{len(seeds)} seeds, {seeds[0]}…{seeds[-1]}"


def html_table(header: list[str], rows: list[list[str]], *, key: str) -> str:
    """An HTML table; cells are trusted HTML (callers escape user text)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return Markup(
        f"<table class='numbers' data-table='{key}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with missing values as None (pandas turns None into NaN in float columns)."""
    return [
        {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def metric_label(metric: str) -> str:
    return figures.METRIC_LABELS.get(metric, metric)
