"""`sweep status` from the store alone: written by another process, read while it still
holds a write transaction (a running sweep) and after it ended."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from store_scenarios import DemoIds

from sweep.store import Store, StoreError, ensemble_label, render_status

REPO = Path(__file__).resolve().parents[2]


def _text(renderable: object) -> str:
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


def _stage_line(text: str, stage: str) -> list[str]:
    # the stage's table row (a verdict line below the table names the stage too, unruled)
    rows = [ln.replace("│", " ").split() for ln in text.splitlines() if "│" in ln]
    (row,) = [r for r in rows if r[:1] == [stage]]
    return row


def test_status_of_a_store_another_process_is_writing(store_url: str) -> None:
    writer = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("store_scenarios.py")), store_url],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "holding"  # mid-transaction, lock held

        running = _text(render_status(store_url, "demo"))
        assert "demo" in running and "RUNNING" in running
        # stage, status, running/complete/pruned/failed, best trial, objective, params
        teachers = _stage_line(running, "teachers")
        assert teachers[:6] == ["teachers", "COMPLETE", "0", "2", "1", "1"]
        assert teachers[6] == "#1" and "2.9" in teachers and "lr=0.002" in teachers
        students = _stage_line(running, "students")
        assert students[:6] == ["students", "RUNNING", "1", "1", "0", "0"]  # not the uncommitted #2
        assert "ensemble of teachers #1, #0" in running  # stage and numbers, as run prints it

        writer.stdin.close()  # the sweep commits and ends
        assert writer.stdout.readline().strip() == "done"
        assert writer.wait(timeout=60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
    ended = _text(render_status(store_url))
    assert "COMPLETE" in ended.splitlines()[0] and "took" in ended
    assert _stage_line(ended, "students")[:3] == ["students", "RUNNING", "2"]


def test_status_names_the_sweeps_that_exist(store: Store, demo: DemoIds) -> None:
    with pytest.raises(StoreError, match=r"no sweep named 'dmeo'.*'demo'"):
        render_status(store, "dmeo")


def test_status_of_an_empty_store(store: Store) -> None:
    assert "no sweeps" in _text(render_status(store))


def test_best_trial_follows_the_stage_direction(store: Store, demo: DemoIds) -> None:
    store.upsert_stage(demo.sweep, "teachers", objective_name="blimp", direction="maximize")
    teachers = _stage_line(_text(render_status(store, "demo")), "teachers")
    assert teachers[6] == "#0" and "(higher" in teachers


def test_an_ensemble_is_named_by_stage_and_number_in_rank_order() -> None:
    assert ensemble_label([("teachers", 2), ("teachers", 0)]) == "teachers #2, #0"
    assert (
        ensemble_label([("teachers", 3)], [" (dev_loss 3.4120)"]) == "teachers #3 (dev_loss 3.4120)"
    )
    mixed = [("teachers", 1), ("teachers_b", 0), ("teachers_b", 4)]
    assert ensemble_label(mixed) == "teachers #1; teachers_b #0, #4"
    assert ensemble_label([]) == ""


def test_took_counts_only_the_time_trials_ran(store: Store) -> None:
    """Overlapping trials count once and the idle hour between two driver runs not at all
    (issue 27.9: "took" had counted failed starts and idle time since the sweep's creation)."""
    from datetime import UTC, datetime, timedelta

    from sweep.store import SweepStatus, TrialStatus

    sweep = store.upsert_sweep("idle", config={}, config_hash="h", code_version="0")
    stage = store.upsert_stage(sweep, "teachers", objective_name="dev_loss")
    t0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    # (start, end) in minutes after t0: 0-30 and 20-50 overlap, 120-130 after an idle hour
    spans = {0: (0, 30), 1: (20, 50), 2: (120, 130)}
    for number, (start, end) in spans.items():
        trial = store.upsert_trial(
            stage, number, role="teacher", params={}, seed=number,
            started_at=t0 + timedelta(minutes=start),
        )  # fmt: skip
        store.finish_trial(
            trial, TrialStatus.COMPLETE, objective=3.0, ended_at=t0 + timedelta(minutes=end)
        )
    store.upsert_trial(stage, 3, role="teacher", params={}, seed=3)  # never finished: not counted
    store.set_sweep_status(sweep, SweepStatus.COMPLETE)
    header = _text(render_status(store, "idle")).splitlines()[0]
    assert "took 1h00m of trial time" in header, header  # 50 + 10 minutes
