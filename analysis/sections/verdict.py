"""The answer first: one verdict line per comparison, and the warning box."""

from __future__ import annotations

import html
from typing import Any

from markupsafe import Markup

from analysis import figures
from analysis.headline import epochs_mismatch, reported_metrics, verdict_metrics
from analysis.load import SELECTION_METRIC, Frames
from analysis.sections._format import Block, Section, fmt_diff, fmt_p, metric_label
from analysis.verdict import (
    METRIC_NAMES,
    ComparisonVerdict,
    pool_asymmetries,
    verdicts,
    what_would_decide,
)


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
    rows = verdict_rows(found)
    section.data["verdict_table"] = rows
    if rows:
        shown = [m for m in metrics if m in FIRST_SCREEN_METRICS] or list(metrics)
        section.blocks.append(
            Block(
                "Each row: the student minus what it is compared with, on seed pairs, with its "
                "95% interval (BLiMP in percentage points; for a loss, negative means the "
                "student is better). Under each number: the smallest difference these pairs "
                "could detect, and the seed pairs the target effect needs (80% power; a seeds: auto "
                "row at its anytime-valid test's bar). "
                "Expand a row for the reasons and the tests.",
                table=verdict_table(rows, shown),
                figure=figures.forest_figure(rows, shown),
            )
        )
    section.data["warnings"] = warnings
    section.data["reported_metrics"] = list(verdict_metrics(frames))
    averages = [
        name
        for m, name in (("glue_average", "GLUE average"), ("zeroshot_average", "zero-shot average"))
        if m in section.data["reported_metrics"]
    ]
    section.data["verdict_basis"] = (
        "Held-out metrics (test loss, BLiMP" + "".join(f", {a}" for a in averages) + ")"
        if SELECTION_METRIC not in metrics
        else "BLiMP"
        + "".join(f", {a}" for a in averages)
        + " and, for want of a test loss in this store, dev loss"
    ) + ", seed repeats paired by seed, Holm-corrected at 0.05."
    if not found:
        section.data["verdict_lines"] = [
            "No comparison is possible: the store has no students stage with a teachers, "
            "baseline or reference stage to compare with."
        ]
    return section


def _asymmetry_warnings(frames: Frames) -> list[str]:
    """One warning per pair of searches not run alike; what that means is said once, last."""
    out, matched = [], False
    for s in frames.stages("students"):
        for t in frames.stages("teachers"):
            asym = pool_asymmetries(frames, s, t)
            if not asym:
                continue
            mismatch = epochs_mismatch(frames.stage(s), frames.stage(t), (s, t))
            matched = matched or mismatch is None
            out.append(
                f"{s} and {t} were not searched alike: "
                + "; ".join(asym)
                + (
                    f". As {mismatch}, sweep-level numbers between them are not drawn and no "
                    "verdict between them is vouched for."
                    if mismatch
                    else "."
                )
            )
    if matched:
        out.append(
            "Sweep-level numbers between searches not run alike compare at matched budget "
            "(expected best at equal k) and only trials with the same epochs; a verdict also "
            "needs that matched comparison to agree."
        )
    return out


FIRST_SCREEN_METRICS = ("blimp_overall", "test_loss", "dev_loss")


def verdict_rows(found: list[ComparisonVerdict]) -> list[dict[str, Any]]:
    """The first screen's numbers: one row per comparison, one cell per metric."""
    rows = []
    for cv in found:
        cells = {
            v.metric: {
                "difference": v.difference,
                "low": v.low,
                "high": v.high,
                "verdict": v.verdict,
                "p": v.p,
                "p_holm": v.p_holm,
                "in_family": v.in_family,
                "n_pairs": v.n_pairs,
                "reason": v.reason,
                "detectable": v.detectable,
                "target": v.target,
                "seeds_needed": v.seeds_needed,
                "alpha_first": v.alpha_first,
            }
            for v in cv.metrics
        }
        rows.append(
            {
                "comparison": cv.comparison,
                "label": cv.label,
                "short_label": cv.comparison,
                "kind": cv.kind,
                "verdict": cv.verdict,
                "headline": cv.headline,
                "pairs": max((v.n_pairs for v in cv.metrics), default=0),
                "pairing": cv.metrics[0].pairing if cv.metrics else "seed",
                "metrics": cells,
            }
        )
    return rows


def _difference_cell(metric: str, cell: dict[str, Any]) -> str:
    if cell.get("difference") is None:
        return "—"
    text = fmt_diff(metric, cell["difference"])
    if cell.get("low") is not None and cell.get("high") is not None:
        text += f" [{fmt_diff(metric, cell['low'])}, {fmt_diff(metric, cell['high'])}]"
    low, high = cell.get("low"), cell.get("high")
    excludes_zero = low is not None and high is not None and (low > 0 or high < 0)
    if cell["verdict"] == "inconclusive" and excludes_zero:  # Holm or a guard held it back
        text += " <span class='note'>(95% interval unadjusted for the family)</span>"
    return (
        text
        + f"<br><span class='note decide'>{html.escape(what_would_decide(metric, cell))}</span>"
    )


def _verdict_word(row: dict[str, Any]) -> str:
    word = row["verdict"]
    headline = html.escape(row["headline"])
    return f"<b class='verdict-word verdict-{word}'>{headline}</b>"


def _details(row: dict[str, Any], metrics: list[str]) -> str:
    parts = []
    for m in metrics:
        cell = row["metrics"].get(m)
        if cell is None:
            continue
        text = f"<b>{html.escape(METRIC_NAMES.get(m, m))}</b>: {cell['verdict']}"
        if cell.get("p") is not None:
            text += (
                f"; paired t p = {fmt_p(cell['p'])}, Holm p = {fmt_p(cell['p_holm'])}"
                if cell.get("p_holm") is not None
                else f"; paired t p = {fmt_p(cell['p'])} (outside the Holm family)"
            )
        if cell.get("reason"):
            text += f"; why: {html.escape(cell['reason'])}"
        parts.append(text)
    unit = "seed pairs" if row["pairing"] == "seed" else "config pairs"
    return (
        f"<details><summary>why, and the tests ({row['pairs']} {unit})</summary>"
        + "<br>".join(parts)
        + "</details>"
    )


def verdict_table(rows: list[dict[str, Any]], metrics: list[str]) -> str:
    """The first screen's table: one row per comparison and one expandable line under it."""
    head = (
        "<th>comparison</th>"
        + "".join(
            f"<th>{html.escape(figures.FOREST_UNITS.get(m, metric_label(m)))}: student − other "
            "[95% CI]</th>"
            for m in metrics
        )
        + "<th>verdict</th><th>pairs</th>"
    )
    body = []
    for r in rows:
        cells = [html.escape(r["label"])]
        cells += [_difference_cell(m, r["metrics"].get(m) or {"difference": None}) for m in metrics]
        cells += [_verdict_word(r), str(r["pairs"])]
        body.append(
            f"<tr class='verdict-row' data-comparison='{html.escape(r['comparison'])}'>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
        body.append(
            f"<tr class='verdict-details'><td colspan='{len(metrics) + 3}'>"
            + _details(r, metrics)
            + "</td></tr>"
        )
    return Markup(
        "<table class='numbers verdict-table' data-table='verdict-table'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
