"""The robustness report: one self-contained HTML file answering "does the ensemble-distilled
student beat its teachers, and robustly?" from the store alone.

analysis.sections builds each section (its numbers and its figures); this module renders them
with the Jinja2 template templates/report.html.j2, plotly.js inlined once so the page opens
offline, and embeds every section's numbers as JSON (`<script id="report-data">`).

    >>> from analysis import write_report
    >>> write_report("sqlite:///demo.db", Path("report.html"), sweep="demo")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jinja2
import numpy as np
import pandas as pd
import plotly.offline
from markupsafe import Markup

from analysis.load import Frames, load_frames
from analysis.sections import SECTIONS, Block, Section, glue_table

if TYPE_CHECKING:
    from sweep.store import Store

__all__ = [
    "Block",
    "Section",
    "build_sections",
    "glue_table",
    "render_report",
    "write_report",
    "write_tables",
]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("analysis", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value


def build_sections(frames: Frames) -> tuple[list[Section], dict[str, Any]]:
    """Every section of the report, and the numbers behind them (JSON-able)."""
    summary: dict[str, Any] = {"sweep_name": frames.sweep}
    sections = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy on degenerate resamples
        for build in SECTIONS:
            section = build(frames)
            summary.update(section.data)
            sections.append(section)
    return sections, _jsonable(summary)


def render_report(frames: Frames) -> str:
    """The whole report as one HTML string (plotly.js inlined once, so it opens offline)."""
    sections, summary = build_sections(frames)
    n_figure = 0
    rendered = []
    for section in sections:
        blocks = []
        for block in section.blocks:
            figure = None
            if block.figure is not None:
                n_figure += 1
                figure = Markup(
                    block.figure.to_html(
                        full_html=False,
                        include_plotlyjs=False,
                        div_id=f"figure-{n_figure}",
                        config={"displaylogo": False, "responsive": True},
                    )
                )
            blocks.append({"figure": figure, "table": block.table, "reading": block.reading})
        rendered.append({"key": section.key, "title": section.title, "blocks": blocks})
    data = json.dumps(summary, allow_nan=False, default=str).replace("</", "<\\/")
    return _TEMPLATES.get_template("report.html.j2").render(
        title=f"babysweep report: {frames.sweep}",
        plotly_js=Markup(plotly.offline.get_plotlyjs()),
        verdict_lines=summary.get("verdict_lines", []),
        verdicts=summary.get("verdicts", []),
        warnings=summary.get("warnings", []),
        verdict_basis=summary.get("verdict_basis", ""),
        first_screen=next((s["blocks"] for s in rendered if s["key"] == "verdict"), []),
        sections=[s for s in rendered if s["key"] != "verdict"],
        data=Markup(data),
    )


def write_report(store: Store | str, out: Path, *, sweep: str | None = None) -> Path:
    """Read one sweep from the store and write the report to `out` (written whole or not at all).

    Raises StoreError for an empty store or an unknown sweep name.
    """
    return _write_whole(out, render_report(load_frames(store, sweep)))


def write_tables(
    store: Store | str, out: Path, *, fmt: Literal["markdown", "latex"], sweep: str | None = None
) -> Path:
    """The headline and verdict tables for a paper (analysis.paper), written whole or not at all."""
    from analysis.paper import paper_tables

    return _write_whole(out, paper_tables(load_frames(store, sweep), fmt))


def _write_whole(out: Path, page: str) -> Path:
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
