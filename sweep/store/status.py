"""`sweep status`: each stage's trial counts by status and its best trial, from the store alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from sweep.store.cost import device_seconds
from sweep.store.labels import ensemble_label
from sweep.store.models import (
    EnsembleMemberModel,
    StageModel,
    Sweep,
    SweepLease,
    SweepStatus,
    Trial,
    TrialStatus,
    utcnow,
)
from sweep.store.read import open_store, select_sweeps
from sweep.store.store import Store

__all__ = ["render_status"]

_STATUS_STYLE = {
    "RUNNING": "yellow",
    "COMPLETE": "green",
    "PRUNED": "blue",
    "FAILED": "red",
    "INTERRUPTED": "magenta",
    "PENDING": "dim",
}


# Column headers under NARROW_STATUS columns (an 80-column terminal).
_SHORT = {TrialStatus.RUNNING: "run", TrialStatus.COMPLETE: "done"}
NARROW_STATUS = 100


def render_status(
    store: Store | str, sweep: str | None = None, width: int | None = None
) -> RenderableType:
    """A rich renderable: per sweep (all when `sweep` is None), per stage, its status, trial
    counts RUNNING/COMPLETE/PRUNED/FAILED and best COMPLETE trial (number, objective, params).
    Reads one snapshot in a read-only transaction, so it works while the sweep runs. Under
    NARROW_STATUS columns of `width` the params go and the headers shorten."""
    narrow = width is not None and width < NARROW_STATUS
    with open_store(store) as opened, opened.session(readonly=True) as session:
        sweep_ids = select_sweeps(session, sweep, opened)
        if not sweep_ids:
            return Text(f"no sweeps in {opened.masked_url} yet")
        sweeps = session.scalars(
            sa.select(Sweep).where(Sweep.id.in_(list(sweep_ids))).order_by(Sweep.id)
        ).all()
        declared = {  # the order the sweep.yaml declares (and runs) its stages
            sw.id: {name: i for i, name in enumerate(sw.config.get("stages") or {})}
            for sw in sweeps
        }
        stages = sorted(
            session.scalars(
                sa.select(StageModel).where(StageModel.sweep_id.in_(list(sweep_ids)))
            ).all(),
            key=lambda st: (st.sweep_id, declared[st.sweep_id].get(st.name, 1 << 30), st.id),
        )
        stage_ids = [s.id for s in stages]
        counts: dict[int, dict[str, int]] = {}
        for stage_id, status, count in session.execute(
            sa.select(Trial.stage_id, Trial.status, sa.func.count())
            .where(Trial.stage_id.in_(stage_ids))
            .group_by(Trial.stage_id, Trial.status)
        ):
            counts.setdefault(stage_id, {})[status] = count
        best = {stage.id: _best_trial(session, stage) for stage in stages}
        device_hours = _device_hours(session, stage_ids)
        members: dict[int, list[tuple[str, int | str]]] = {}
        for stage_id, teachers, number in session.execute(
            sa.select(EnsembleMemberModel.stage_id, StageModel.name, Trial.number)
            .join(Trial, Trial.id == EnsembleMemberModel.trial_id)
            .join(StageModel, StageModel.id == Trial.stage_id)
            .where(EnsembleMemberModel.stage_id.in_(stage_ids))
            .order_by(EnsembleMemberModel.stage_id, EnsembleMemberModel.rank)
        ):
            members.setdefault(stage_id, []).append((teachers, number))
        leases = {
            lease.sweep_name: (lease.host, lease.pid, lease.heartbeat_at, lease.pid_started)
            for lease in session.scalars(
                sa.select(SweepLease).where(SweepLease.sweep_name.in_([s.name for s in sweeps]))
            )
        }
        ran = {sw.id: _trials_ran(session, sw) for sw in sweeps}
        masked = opened.masked_url

    parts: list[RenderableType] = []
    for sw in sweeps:
        parts.append(_header(sw, masked, narrow, ran[sw.id]))
        parts.append(_driver_line(sw, leases.get(sw.name)))
        table = Table(show_edge=False, pad_edge=False)
        names = [s.name for s in stages if s.sweep_id == sw.id]
        table.add_column("stage", no_wrap=True, min_width=max(map(len, names), default=5))
        table.add_column("status", no_wrap=True, min_width=8)
        for status in TrialStatus:
            header = _SHORT.get(status, status.lower()) if narrow else status.lower()
            table.add_column(header, justify="right", no_wrap=True)
        table.add_column("best" if narrow else "best trial", overflow="fold")
        table.add_column("objective", overflow="fold")
        if not narrow:  # `sweep best --stage NAME` prints them in full
            table.add_column("params", overflow="fold")
        # GPU-hours, else CPU core-hours
        table.add_column("dev-h" if narrow else "device-h", justify="right", no_wrap=True)
        for stage in (s for s in stages if s.sweep_id == sw.id):
            by_status = counts.get(stage.id, {})
            row: list[RenderableType] = [stage.name, _styled(stage.status)]
            row += [str(by_status.get(status, 0)) for status in TrialStatus]
            top = best[stage.id]
            if top is not None:
                objective = f"{top.objective:.4g}"
                if stage.objective_name and not narrow:
                    objective = f"{stage.objective_name} {objective} ({_arrow(stage.direction)})"
                elif stage.objective_name:
                    objective = f"{stage.objective_name} {objective}"
                row += [f"#{top.number}", objective]
                row += [] if narrow else [_format_params(top.params)]
            elif stage.id in members:
                picks = ensemble_label(members[stage.id])
                row += [picks, "(ensemble)"] if narrow else ["", "", f"ensemble of {picks}"]
            else:
                row += ["", ""] if narrow else ["", "", ""]
            row.append(f"{device_hours.get(stage.id, 0.0):.3g}")
            table.add_row(*row)
        if not table.rows:
            parts.append(Text("  no stages yet", style="dim"))
        else:
            parts.append(table)
        parts.extend(_verdicts(store, sw.name))
        parts.append(Text(""))
    return Group(*parts[:-1])


def _device_hours(session: Session, stage_ids: list[int]) -> dict[int, float]:
    """Each stage's device-hours: its trials' stored device-seconds, else (rows before
    revision 0007, running trials: until now) wall time x devices held (sweep.store.cost)."""
    hours: dict[int, float] = {}
    now = utcnow()
    for stage_id, stored, started, ended, resources in session.execute(
        sa.select(
            Trial.stage_id, Trial.device_seconds, Trial.started_at, Trial.ended_at, Trial.resources
        ).where(Trial.stage_id.in_(stage_ids))
    ):
        seconds = stored if stored is not None else device_seconds(started, ended or now, resources)
        hours[stage_id] = hours.get(stage_id, 0.0) + (seconds or 0.0) / 3600.0
    return hours


def _verdicts(store: Store | str, name: str) -> list[RenderableType]:
    """Each comparison's verdict and what would decide it (analysis.verdict.status_lines)."""
    from analysis.load import load_frames
    from analysis.verdict import status_lines

    lines = status_lines(load_frames(store, name))
    if not lines:
        return []
    out: list[RenderableType] = [Text("  verdicts (what would decide them):", style="bold")]
    return out + [Text(f"    {line}") for line in lines]


def _best_trial(session: Session, stage: StageModel) -> Trial | None:
    order = Trial.objective.desc() if stage.direction == "maximize" else Trial.objective.asc()
    return session.scalars(
        sa.select(Trial)
        .where(
            Trial.stage_id == stage.id,
            Trial.status == TrialStatus.COMPLETE,
            Trial.objective.is_not(None),
        )
        .order_by(order, Trial.number)
        .limit(1)
    ).first()


def _trials_ran(session: Session, sw: Sweep) -> float:
    """Seconds during which at least one of the sweep's trials ran (the union of their
    started..ended spans; a trial still running counts until now while the sweep runs):
    not the failed starts, the Ray start-up or the idle time between driver runs."""
    now = utcnow()
    spans: list[tuple[datetime, datetime]] = []
    for started, ended, status in session.execute(
        sa.select(Trial.started_at, Trial.ended_at, Trial.status)
        .join(StageModel, StageModel.id == Trial.stage_id)
        .where(StageModel.sweep_id == sw.id)
    ):
        if ended is None and status == TrialStatus.RUNNING and sw.status == SweepStatus.RUNNING:
            ended = now
        if started is not None and ended is not None and ended > started:
            spans.append((started, ended))
    total = 0.0
    reach: datetime | None = None
    for started, ended in sorted(spans):
        if reach is not None and started < reach:
            started = reach  # overlaps the spans before it: count only what is new
        if ended > started:
            total += (ended - started).total_seconds()
        reach = ended if reach is None else max(reach, ended)
    return total


def _header(sw: Sweep, masked: str, narrow: bool = False, ran: float = 0.0) -> Text:
    text = Text.assemble(
        ("sweep ", "bold"),
        (sw.name, "bold cyan"),
        "  ",
        _styled(sw.status),
        f"  started {_when(sw.created_at)}",
        f"  {'took' if sw.status != SweepStatus.RUNNING else 'trials ran for'} "
        f"{_duration(ran)}" + ("" if narrow else " of trial time"),
        "\n  " if narrow else "  ",
        f"code {sw.code_version}",
        "\n  " if narrow else "  ",
        f"store {masked}",
    )
    return text


def _driver_line(sw: Sweep, lease: tuple[str, int, datetime, float | None] | None) -> Text:
    """Who runs the sweep now (its lease), and why it FAILED when it did."""
    if lease is not None:
        host, pid, beat, pid_started = lease
        ago = (utcnow() - beat).total_seconds()
        line = f"  driver: host {host}, pid {pid}, last heartbeat {ago:.0f} s ago"
        if _driver_gone(sw.name, host, pid, pid_started, beat):
            # killed (kill -9, a crash): its lease outlives it until the next run takes it
            line += " (gone: that process no longer runs; `sweep run --resume` continues it)"
    elif sw.status == SweepStatus.RUNNING:
        line = "  driver: none (stopped without a trace; continue with `sweep run --resume`)"
    else:
        line = "  driver: none"
    if sw.status == SweepStatus.FAILED and sw.error:
        line += f"\n  failed: {sw.error.splitlines()[0]}"
    return Text(line)


def _driver_gone(
    sweep: str, host: str, pid: int, pid_started: float | None, beat: datetime
) -> bool:
    """The lease holder ran on this host and its process is no longer there."""
    from sweep.lease import process_gone
    from sweep.store.rows import LeaseRow

    holder = LeaseRow(sweep, "", host, pid, pid_started, beat, beat)
    return process_gone(holder)


def _styled(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _arrow(direction: str) -> str:
    return "higher is better" if direction == "maximize" else "lower is better"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _format_params(params: dict[str, Any], limit: int = 6) -> str:
    items = sorted(params.items())
    shown = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in items[:limit]]
    if len(items) > limit:
        shown.append(f"(+{len(items) - limit} more)")
    return " ".join(shown)
