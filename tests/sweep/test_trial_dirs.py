"""Trial folders a person can read, and no empty stage folder after an early Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Their `sweep run` processes start a local Ray under $SWEEP_TEST_CPU_LOAD busy processes.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("cpu_load_at_start")]


def test_ctrl_c_before_any_trial_leaves_no_empty_stage_folder(
    write_tiny_sweep, tmp_path: Path
) -> None:
    path = write_tiny_sweep(tmp_path)
    runs = tmp_path / "runs" / "demo"
    driver = subprocess.Popen(
        [str(Path(sys.executable).parent / "sweep"), "run", str(path), "--stage", "teachers"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_ADDRESS": ""},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        stage_dirs: list[Path] = []
        while time.monotonic() < deadline and driver.poll() is None and not stage_dirs:
            stage_dirs = list(runs.glob("teachers-*")) if runs.is_dir() else []
            time.sleep(0.02)
        assert stage_dirs, "the stage folder never appeared"
        driver.send_signal(signal.SIGINT)  # as soon as Tune made the stage folder
        _, stderr = driver.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 2, stderr[-2000:]
    # Tune had written its bookkeeping (tuner.pkl, ...) there: without the clean-up the stage
    # folder stays, holding no trial
    left = list(runs.glob("*")) if runs.is_dir() else []
    for stage_dir in left:
        trials = [p.name for p in stage_dir.iterdir() if p.is_dir()]
        assert trials, f"{stage_dir} was left without a trial folder"
        assert all(t.startswith("teachers-0") for t in trials), trials
