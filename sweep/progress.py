"""The live progress board of `sweep run`: a row per stage, a row per trial under it.

The recorder updates `StageProgress` / `TrialProgress` from Tune's callbacks; `Board`
draws them with rich.Live (re-rendered twice a second, so elapsed times tick), or, when
stderr is not a terminal (logs, CI), prints one line whenever a stage's counts change.
The ETA comes from the epochs trials have finished so far, so it appears after the first
epoch rather than after the first whole trial.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["Board", "StageProgress", "TrialProgress", "clock"]

# Finished trials shown under a running stage (all running ones always are).
_FINISHED_SHOWN = 4
# Terminals narrower than this get the compact table (no borders, no params column).
NARROW = 100


@dataclass
class TrialProgress:
    """One trial's live state: epoch, last train loss, elapsed, per-epoch seconds."""

    number: int
    params: dict[str, Any]
    epochs: int
    epoch: int = 0
    loss: float | None = None
    dev_loss: float | None = None
    status: str = "RUNNING"
    started: float = field(default_factory=time.monotonic)
    last_report: float = field(default_factory=time.monotonic)
    ended: float | None = None
    epoch_seconds: list[float] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started


@dataclass
class StageProgress:
    """Live counters and trials of one stage (updated by the recorder)."""

    name: str
    total: int
    epochs: int = 1
    running: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    best: float | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    trials: dict[int, TrialProgress] = field(default_factory=dict)
    peak_running: int = 0

    @property
    def done(self) -> int:
        return self.complete + self.pruned + self.failed

    @property
    def elapsed(self) -> float:
        """Seconds since the stage started; frozen once its last trial finished."""
        if self.ended is None and self.done >= self.total:
            self.ended = time.monotonic()
        return (self.ended or time.monotonic()) - self.started

    def trial_started(self, number: int, params: dict[str, Any], epochs: int | None = None) -> None:
        self.trials[number] = TrialProgress(number, dict(params), epochs or self.epochs)
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)

    def trial_reported(
        self,
        number: int,
        *,
        epoch: int,
        loss: float | None,
        dev_loss: float | None,
        seconds: float | None,
    ) -> None:
        trial = self.trials.get(number)
        if trial is None:
            return
        now = time.monotonic()
        trial.epoch_seconds.append(seconds if seconds is not None else now - trial.last_report)
        trial.epoch, trial.last_report = epoch, now
        trial.loss = loss if loss is not None else trial.loss
        trial.dev_loss = dev_loss if dev_loss is not None else trial.dev_loss

    def trial_finished(self, number: int, status: str, objective: float | None) -> None:
        self.running = max(0, self.running - 1)
        if status == "COMPLETE" and objective is not None:
            self.complete += 1
            self.best = objective if self.best is None else min(self.best, objective)
        elif status == "PRUNED":
            self.pruned += 1
        else:
            self.failed += 1
        trial = self.trials.get(number)
        if trial is not None:
            trial.status, trial.ended = status, time.monotonic()

    def eta(self) -> float | None:
        """Seconds left, from the epoch times so far; None before any epoch ended.

        A trial's first epoch also pays its start-up (imports, data, model), so first and
        later epochs are timed apart; the running trials' remaining work and the waiting
        trials' whole runs are shared among as many slots as have run at once.
        """
        if self.done >= self.total:
            return 0.0
        firsts = [t.epoch_seconds[0] for t in self.trials.values() if t.epoch_seconds]
        if not firsts:
            return None
        later_times = [s for t in self.trials.values() for s in t.epoch_seconds[1:]]
        first = mean(firsts)
        later = mean(later_times) if later_times else first
        now = time.monotonic()
        running = [t for t in self.trials.values() if t.ended is None]
        work = 0.0
        for t in running:
            if t.epoch >= t.epochs:
                continue  # training done; its final evaluation is short
            current = first if t.epoch == 0 else later
            work += max(0.0, current - (now - t.last_report)) + (t.epochs - t.epoch - 1) * later
        waiting = max(0, self.total - self.done - len(running))
        work += waiting * (first + (self.epochs - 1) * later)
        return work / max(1, len(running), self.peak_running)


class Board:
    """The live terminal table; see the module docstring."""

    def __init__(self, console: Console) -> None:
        # Piped into a file or a log, rich would squeeze the table into 80 columns.
        self.console = console if console.is_terminal else Console(stderr=True, width=140)
        self.stages: list[StageProgress] = []
        self.notes: dict[str, str] = {}
        self.warnings: list[str] = []
        self.stopping = False
        self._live: Live | None = None
        self._printed: dict[str, tuple[int, int]] = {}
        self._narrow = False

    def add(self, name: str, total: int, epochs: int = 1) -> StageProgress:
        progress = StageProgress(name, total, epochs)
        self.stages.append(progress)
        self.refresh()
        return progress

    def note(self, stage: str, text: str) -> None:
        """A stage without trials (the ensemble selection): one line of what it chose."""
        self.notes[stage] = text
        if self._live is None:
            self.console.print(f"{stage}: {text}", highlight=False)
        self.refresh()

    def warn(self, text: str) -> None:
        """A condition that holds trials back (no node can place them): said at once and
        kept saying, on the live board for as long as it runs, in logs with every count line
        of a stage whose trials wait with none running."""
        self.warnings.append(text)
        if self._live is None:
            self.console.print(f"warning: {text}", highlight=False)
        self.refresh()

    def stop_requested(self) -> None:
        """Ctrl-C: say so at once; Tune stops the trials at its next step."""
        if not self.stopping:
            self.stopping = True
            self.console.print(
                "stopping... (finished trials are kept; Ctrl-C again to abort at once)",
                highlight=False,
            )
            self.refresh()

    @contextmanager
    def live(self) -> Iterator[None]:
        if not self.console.is_terminal:
            yield
            self.console.print(self.render())
            return
        with Live(
            console=self.console, get_renderable=self.render, refresh_per_second=2, transient=False
        ) as live:
            self._live = live
            try:
                yield
            finally:
                live.update(self.render(), refresh=True)
                self._live = None

    def refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()
            return
        if self.console.is_terminal:
            return
        for p in self.stages:  # logs and CI: one line whenever a count changes
            state = (p.running, p.done)
            if self._printed.get(p.name) != state:
                self._printed[p.name] = state
                best = f"{p.best:.4f}" if p.best is not None else "-"
                eta = p.eta()
                self.console.print(
                    f"{p.name}: {p.running} running, {p.complete} complete, {p.pruned} "
                    f"pruned, {p.failed} failed of {p.total}; best dev_loss {best}; "
                    f"{clock(p.elapsed)} elapsed"
                    + (f", ETA {clock(eta)}" if eta and p.done < p.total else ""),
                    highlight=False,
                )
                if p.running == 0 and p.done < p.total:
                    for text in self.warnings:
                        self.console.print(f"warning: {text}", highlight=False)

    def render(self) -> RenderableType:
        # Under NARROW columns (an 80-column terminal) the numbers keep their width: the
        # borders go, the params column goes (`sweep best` shows them), the counts shorten.
        self._narrow = self.console.width < NARROW
        table = (
            Table(title="babysweep", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
            if self._narrow
            else Table(title="babysweep", title_justify="left")
        )
        table.add_column("stage" if self._narrow else "stage / trial", no_wrap=True)
        table.add_column("status", justify="left", no_wrap=True)
        for name, width in (("epoch", 5), ("loss", 6), ("dev_loss", 8), ("elapsed", 7), ("ETA", 7)):
            table.add_column(name, justify="right", no_wrap=True, min_width=width)
        if not self._narrow:
            table.add_column("params", justify="left", overflow="ellipsis", no_wrap=True)
        for name, text in self.notes.items():
            if not any(p.name == name for p in self.stages):
                cells = [f"[bold]{name}[/]", "COMPLETE", "", "", "", "", ""]
                table.add_row(*cells, *([] if self._narrow else [text]))  # note() printed it
        for p in self.stages:
            self._stage_rows(table, p)
        parts: list[RenderableType] = [table]
        if self._narrow and self._live is not None:  # ensembles chosen, above the table
            parts[:0] = [Text(f"{k}: {v}", overflow="ellipsis") for k, v in self.notes.items()]
        parts += [Text(f"warning: {w}", style="yellow") for w in self.warnings]
        if self.stopping:
            parts.append(Text("stopping... (Ctrl-C again to abort at once)", style="bold"))
        return parts[0] if len(parts) == 1 else Group(*parts)

    def _stage_rows(self, table: Table, p: StageProgress) -> None:
        left = p.total - p.done
        eta = p.eta()
        narrow = self._narrow
        run = "run" if narrow else "running"
        counts = f"{p.done}/{p.total} done, {p.running} {run}"
        counts += f", {p.pruned} pruned" if p.pruned else ""
        counts += f", {p.failed} failed" if p.failed else ""
        cells = [
            f"[bold]{p.name}[/]",
            counts,
            "",
            "",
            (f"{p.best:.4f}" if narrow else f"best {p.best:.4f}") if p.best is not None else "-",
            clock(p.elapsed),
            "done" if not left else (clock(eta) if eta is not None else "-"),
        ]
        table.add_row(*cells, *([] if narrow else [self.notes.get(p.name, "")]))
        if not left:
            return
        running = [t for t in p.trials.values() if t.ended is None]
        finished = sorted(
            (t for t in p.trials.values() if t.ended is not None), key=lambda t: t.ended or 0
        )[-_FINISHED_SHOWN:]
        for t in sorted([*finished, *running], key=lambda t: t.number):
            table.add_row(
                f"  #{t.number}",
                t.status,
                f"{t.epoch}/{t.epochs}",
                f"{t.loss:.4f}" if t.loss is not None else "-",
                f"{t.dev_loss:.4f}" if t.dev_loss is not None else "",
                clock(t.elapsed),
                "",
                *([] if narrow else [format_params(t.params)]),
            )


def install_stop_notice(notify: Callable[[], None]) -> None:
    """Wrap the current SIGINT handler (Tune's, during a fit) so Ctrl-C first notifies."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        notify()
        if callable(previous):
            previous(signum, frame)
        else:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def format_params(params: dict[str, Any]) -> str:
    parts = []
    for key, value in params.items():
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def clock(seconds: float) -> str:
    """h:mm:ss, or m:ss under an hour."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
