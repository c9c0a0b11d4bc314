"""The headline and verdict tables as a researcher pastes them into a paper.

    sweep report sweep.yaml --format latex --out tables.tex      # booktabs
    sweep report sweep.yaml --format markdown --out tables.md

Same numbers as the HTML report (analysis.headline.headline_table, analysis.verdict.verdicts):
IQM with its 95% bootstrap interval per group, and per comparison the seed-paired difference
with its 95% t-interval and the verdict; each caption says how many seeds the numbers rest on.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pandas as pd

from analysis.headline import headline_table, reported_metrics
from analysis.load import Frames, finished
from analysis.verdict import METRIC_NAMES, verdicts

__all__ = ["PAPER_FORMATS", "paper_tables"]

PAPER_FORMATS = ("markdown", "latex")
Format = Literal["markdown", "latex"]
_UNITS = {"blimp_overall": "BLiMP (\\%)", "test_loss": "test loss (nats/token)"}
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}  # fmt: skip


def _value(metric: str, v: float | None, *, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    sign = "+" if signed else ""
    if metric == "blimp_overall":
        return f"{100 * v:{sign}.2f}"
    return f"{v:{sign}.4f}"


def _interval(metric: str, v: Any, low: Any, high: Any, *, signed: bool = False) -> str:
    text = _value(metric, v, signed=signed)
    if low is not None and high is not None and not pd.isna(low) and not pd.isna(high):
        text += f" [{_value(metric, low, signed=signed)}, {_value(metric, high, signed=signed)}]"
    return text


def _repeat_seeds(frames: Frames) -> list[int]:
    t = frames.trials
    done = finished(t[t["stage_kind"].isin(["repeats", "reference"])])
    return sorted({int(s) for s in done["seed"].dropna()})


def _units(metric: str, fmt: Format, *, difference: bool = False) -> str:
    name = _UNITS.get(metric, METRIC_NAMES.get(metric, metric))
    if difference and metric == "blimp_overall":
        name = "BLiMP (pp)"
    return name if fmt == "latex" else name.replace("\\%", "%")


def _tables(frames: Frames, fmt: Format) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(caption, header, rows, label) of the headline and the verdict table."""
    metrics = list(reported_metrics(frames))
    seeds = _repeat_seeds(frames)
    seeds_text = f"{len(seeds)} seeds" if seeds else "no seed repeats"
    head = headline_table(frames)
    header = ["group", "trials"] + [f"{_units(m, fmt)} IQM [95% CI]" for m in metrics]
    rows = [
        [str(r["label"]), str(r["trials"])]
        + [_interval(m, r[f"{m}_iqm"], r[f"{m}_iqm_low"], r[f"{m}_iqm_high"]) for m in metrics]
        for r in head.to_dict(orient="records")
    ]
    headline = (
        f"Sweep {frames.sweep}: held-out metrics per group, interquartile mean of the completed "
        f"trials with its 95% bootstrap interval; seed repeats over {seeds_text}.",
        header,
        rows,
        "headline",
    )
    found = verdicts(frames)
    delta = "$\\Delta$" if fmt == "latex" else "Δ"
    v_header = ["comparison"]
    v_header += [f"{delta} {_units(m, fmt, difference=True)} [95% CI]" for m in metrics]
    v_header += ["verdict", "pairs"]
    v_rows = []
    for cv in found:
        by = {v.metric: v for v in cv.metrics}
        row = [cv.label]
        for m in metrics:
            v = by.get(m)
            row.append("–" if v is None else _interval(m, v.difference, v.low, v.high, signed=True))
        row += [cv.headline, str(max((v.n_pairs for v in cv.metrics), default=0))]
        v_rows.append(row)
    verdict = (
        f"Sweep {frames.sweep}: student minus the other side on seed pairs ({seeds_text}), "
        "mean difference with its 95% t-interval (BLiMP in percentage points; for a loss, "
        "negative favours the student); verdicts by paired t-test, Holm-corrected at 0.05.",
        v_header,
        v_rows,
        "verdicts",
    )
    return [headline, verdict]


def _latex_escape(text: str) -> str:
    if text.startswith("$\\Delta$ "):  # our own math, then escaped prose
        return "$\\Delta$ " + _latex_escape(text[len("$\\Delta$ ") :])
    if "\\%" in text:
        return "\\%".join(_latex_escape(part) for part in text.split("\\%"))
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _latex(caption: str, header: list[str], rows: list[list[str]], label: str) -> str:
    spec = "l" + "r" * (len(header) - 1)
    lines = [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{_latex_escape(caption)}}}",
        f"\\label{{tab:{label}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(_latex_escape(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    lines += [" & ".join(_latex_escape(c) for c in row) + " \\\\" for row in rows]
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines)


def _markdown(caption: str, header: list[str], rows: list[list[str]], label: str) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    out = [line(header), "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out) + f"\n\nTable: {caption}"


def paper_tables(frames: Frames, fmt: Format) -> str:
    """The headline and verdict tables in `fmt` ("markdown" or "latex": booktabs)."""
    write = _latex if fmt == "latex" else _markdown
    preamble = "% needs \\usepackage{booktabs}\n" if fmt == "latex" else ""
    return preamble + "\n\n".join(write(*t) for t in _tables(frames, fmt)) + "\n"
