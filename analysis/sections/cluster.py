"""Section 6: learning curves and the cluster's timeline."""

from __future__ import annotations

import math

import pandas as pd

from analysis import figures
from analysis.load import Frames
from analysis.sections._format import Block, Section


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
