"""The live board's arithmetic and layout, on rich's recording console (the full board in a
pseudo-terminal is tests/sweep/test_runner.py's Ctrl-C test); `sweep dashboard` on a busy port."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from sweep.cli import app
from sweep.progress import Board, StageProgress, clock


def _recording() -> Console:
    return Console(record=True, force_terminal=True, width=160, color_system=None)


def test_eta_comes_from_epoch_times_before_any_trial_ends() -> None:
    stage = StageProgress("teachers", total=3, epochs=2)
    assert stage.eta() is None  # nothing to go on yet
    stage.trial_started(0, {"lr": 0.003})
    stage.trial_started(1, {"lr": 0.001})
    assert stage.eta() is None
    stage.trial_reported(0, epoch=1, loss=5.1, dev_loss=5.3, seconds=2.0)
    # 2 s/epoch: trial 0 has 1 epoch left, trial 1 2, trial 2 (waiting) 2; two at a time
    assert stage.eta() == pytest.approx((2 + 4 + 4) / 2, abs=0.2)
    stage.trial_reported(0, epoch=2, loss=4.9, dev_loss=5.0, seconds=2.0)
    stage.trial_finished(0, "COMPLETE", 5.0)
    assert stage.best == 5.0 and stage.complete == 1 and stage.running == 1
    assert 0 < (stage.eta() or 0) < 5
    stage.trial_finished(1, "PRUNED", None)
    stage.trial_started(2, {"lr": 0.002})
    stage.trial_finished(2, "FAILED", None)
    assert stage.eta() == 0.0 and stage.done == 3


def test_first_epochs_carry_the_start_up_cost_apart_from_later_epochs() -> None:
    stage = StageProgress("students", total=2, epochs=3)
    stage.trial_started(0, {})
    stage.trial_reported(0, epoch=1, loss=5.0, dev_loss=5.1, seconds=20.0)  # imports, data
    stage.trial_reported(0, epoch=2, loss=4.9, dev_loss=5.0, seconds=1.0)
    stage.trial_started(1, {})
    # trial 0: one 1 s epoch left; trial 1: a 20 s first epoch and two 1 s ones; 2 at a time
    assert stage.eta() == pytest.approx((1 + 20 + 2) / 2, abs=0.2)


def test_board_shows_a_row_per_trial_under_its_stage_and_the_ensemble() -> None:
    console = _recording()
    board = Board(console)
    teachers = board.add("teachers", 3, epochs=2)
    teachers.trial_started(0, {"lr": 0.00312345, "batch_size": 16})
    teachers.trial_started(1, {"lr": 0.001, "batch_size": 32})
    teachers.trial_reported(0, epoch=1, loss=5.1234, dev_loss=5.3, seconds=30.0)
    console.print(board.render())
    text = console.export_text()
    rows = text.splitlines()
    stage_row = next(i for i, r in enumerate(rows) if "teachers" in r)
    trial_rows = [r for r in rows[stage_row + 1 :] if re.search(r"#\d", r)]
    assert len(trial_rows) == 2
    assert re.search(
        r"#0 .*RUNNING.* 1/2 .* 5\.1234 .* 5\.3000 .*lr=0\.00312 batch_size=16", trial_rows[0]
    )
    assert re.search(r"#1 .*RUNNING.* 0/2 ", trial_rows[1])
    eta = re.search(r"(\d+:\d\d)\s*│\s*(\d+:\d\d)\s*│", rows[stage_row])
    assert eta is not None and eta.group(2) == clock(teachers.eta() or 0) != "0:00"

    board.note("ensemble", "teachers #0 (dev_loss 5.0000), #2 (dev_loss 5.1000)")
    console.print(board.render())
    assert "teachers #0 (dev_loss 5.0000), #2" in console.export_text()


def test_elapsed_ticks_and_logs_get_one_line_per_change(monkeypatch: pytest.MonkeyPatch) -> None:
    stage = StageProgress("students", total=2, epochs=1)
    stage.trial_started(0, {})
    first = stage.trials[0].elapsed
    time.sleep(0.05)
    assert stage.trials[0].elapsed > first and stage.elapsed > 0

    piped = Console(record=True, force_terminal=False, width=160)
    board = Board(piped)
    board.console = piped  # what a log file sees
    students = board.add("students", 2, epochs=1)
    students.trial_started(0, {})
    students.trial_reported(0, epoch=1, loss=4.0, dev_loss=4.5, seconds=3.0)
    board.refresh()
    students.trial_finished(0, "COMPLETE", 4.5)
    board.refresh()
    board.refresh()  # no change, no line
    lines = [ln for ln in piped.export_text().splitlines() if ln.startswith("students:")]
    assert len(lines) == 3, lines
    assert "1 complete" in lines[-1] and "best dev_loss 4.5000" in lines[-1]
    assert "ETA" in lines[-1]


def test_stopping_is_said_once() -> None:
    console = _recording()
    board = Board(console)
    board.stop_requested()
    board.stop_requested()
    assert console.export_text().count("stopping...") == 1


def test_dashboard_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert CliRunner().invoke(app, ["db", "upgrade", url]).exit_code == 0
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["dashboard", "--storage", url, "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"port {port}" in lines[0] and "--port" in lines[0], lines


_BOARD_80 = """
from rich.console import Console
from sweep.progress import Board
board = Board(Console())
for name in ("teachers", "students_k2"):
    stage = board.add(name, 12, epochs=2)
    for n in range(3):
        stage.trial_started(n, {"lr": 0.00312345, "batch_size": 16, "temperature": 2.5})
        stage.trial_reported(n, epoch=1, loss=5.1234, dev_loss=5.3, seconds=3700.0)
    stage.trial_finished(0, "COMPLETE", 5.3)
board.console.print(board.render())
"""


def _in_80_columns(*argv: str) -> str:
    """The text a command prints in a pseudo-terminal of 80 columns (escapes stripped)."""
    from tests.terminal import run_in_terminal

    code, out = run_in_terminal(
        argv, env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])}, timeout=300
    )
    assert code == 0, out
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out).replace("\r", "")
    # a store URL is one unbreakable word: its own line, the only one allowed to run on
    lines = [line for line in text.splitlines() if not line.startswith("  store ")]
    assert max(len(line) for line in lines) <= 80, text
    assert "…" not in text, text
    return text


def test_the_live_table_fits_an_80_column_terminal(tmp_path: Path) -> None:
    """In a pseudo-terminal of 80 columns every column keeps its numbers and every stage its
    full name (issue 27, item 5): the borders and the params column give way instead."""
    import sys

    script = tmp_path / "board.py"
    script.write_text(_BOARD_80)
    text = _in_80_columns(sys.executable, str(script))
    lines = [line for line in text.splitlines() if line.strip()]
    header = next(line for line in lines if "status" in line)
    for column in ("epoch", "loss", "dev_loss", "elapsed", "ETA"):
        assert column in header.split(), header
    stage_row = next(line for line in lines if line.lstrip().startswith("students_k2"))
    assert re.search(r"1/12 done, 2 run .* 5\.3000 .* \d+:\d\d:\d\d", stage_row), stage_row
    assert re.search(r"#1 +RUNNING +1/2 +5\.1234 +5\.3000", text), text


def test_sweep_status_fits_an_80_column_terminal(tmp_path: Path) -> None:
    """`sweep status` at 80 columns: whole words and stage names, short headers, no params."""
    import sys

    from tests.analysis.conftest import make_thin_sweep, write_store

    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    synth = make_thin_sweep("a_long_sweep_name")
    write_store(url, synth)
    sweep = str(Path(sys.executable).parent / "sweep")
    text = _in_80_columns(sys.executable, sweep, "status", "--storage", url)
    header = next(line for line in text.splitlines() if "status" in line and "stage" in line)
    assert header.split("┃")[2:6] == [" run ", " done ", " pruned ", " failed "], header
    for stage in {t.stage for t in synth.trials}:
        assert re.search(rf"^{re.escape(stage)} +│ [A-Z]+ +│", text, flags=re.M), (stage, text)
    assert "params" not in header


def test_a_warning_about_trials_no_node_can_place_stays_on_the_board_and_in_the_logs() -> None:
    """Issue 28: resources no node of a cluster has are said at once and kept saying."""
    import io

    live = Board(_recording())
    stage = live.add("teachers", total=2)
    live.warn("stages.teachers.resources: a trial asks for 1 GPU, but no node has one")
    live.console.print(live.render())
    stage.trial_started(0, {})
    live.console.print(live.render())  # still there on every later render
    assert live.console.export_text().count("no node has one") == 3  # said, then each render

    log = io.StringIO()
    board = Board(Console(file=log, force_terminal=False, width=140))
    board.console = Console(file=log, force_terminal=False, width=140)  # the log, captured
    waiting = board.add("teachers", total=2)
    board.warn("no node can place a teachers trial")
    waiting.trial_started(0, {})  # one running: the count line alone
    board.refresh()
    waiting.trial_finished(0, "COMPLETE", 1.0)  # none running, one waiting: said again
    board.refresh()
    lines = log.getvalue().splitlines()
    assert [i for i, line in enumerate(lines) if "no node can place" in line] == [1, 4], lines
