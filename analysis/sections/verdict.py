"""The answer first: one verdict line per comparison, and the warning box."""

from __future__ import annotations

from analysis.headline import reported_metrics, verdict_metrics
from analysis.load import SELECTION_METRIC, Frames
from analysis.sections._format import Section
from analysis.verdict import pool_asymmetries, verdicts


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
