"""One driver per sweep (issue 18), with real `sweep run` processes on a tiny teacher stage.

- Two `sweep run` started within 100 ms, on SQLite and on PostgreSQL: one runs, the other
  exits 2 naming the holder; `--resume` against the live driver is refused the same way;
  the stage completes with exact counts and Optuna agrees with the store.
- kill -9 of the driver mid-stage: its local Ray listened on 127.0.0.1 only and does not
  outlive it for long; a plain `run` is refused (interrupted trials, no driver alive), and
  `--resume` takes the dead driver's lease over at once and finishes with exact counts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest

from sweep.store import Store, StoreError, TrialStatus

# Their `sweep run` processes start a local Ray under $SWEEP_TEST_CPU_LOAD busy processes.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("cpu_load_at_start")]

SWEEP = str(Path(sys.executable).parent / "sweep")
TRIALS = 2


def _tiny(write_tiny_sweep, tmp_path: Path) -> Path:
    return write_tiny_sweep(
        tmp_path,
        **{"stages.teachers.trials": TRIALS, "stages.teachers.epochs": 1},
    )


def _driver(path: Path, url: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [SWEEP, "run", str(path), "--stage", "teachers", "--storage", url, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_ADDRESS": ""},
        start_new_session=True,  # its own process group: a failed test kills exactly it
    )


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return proc.returncode, out + err


def _assert_exact(url: str) -> None:
    """TRIALS finished teacher trials in the store, the same in Optuna, no lease left."""
    store = Store(url, upgrade=False)
    try:
        sweep = store.get_sweep("demo")
        assert sweep is not None and sweep.status in {"PARTIAL", "COMPLETE"}, sweep
        stage = store.get_stage(sweep.id, "teachers")
        assert stage is not None
        trials = store.trials(stage.id)
        assert [t.number for t in trials] == list(range(TRIALS))
        assert {t.status for t in trials} == {TrialStatus.COMPLETE}
        study = optuna.load_study(study_name="demo/teachers", storage=store.url)
        assert [(t.number, t.state.name) for t in study.trials] == [
            (n, "COMPLETE") for n in range(TRIALS)
        ]
        assert [t.value for t in study.trials] == pytest.approx([t.objective for t in trials])
        assert store.get_lease("demo") is None
    finally:
        store.dispose()


def test_two_drivers_started_together_one_runs(
    store_url: str, write_tiny_sweep, tmp_path: Path
) -> None:
    path = _tiny(write_tiny_sweep, tmp_path)
    first = _driver(path, store_url)
    time.sleep(0.05)  # both within 100 ms
    second = _driver(path, store_url)
    procs = {first.pid: first, second.pid: second}
    deadline = time.monotonic() + 600
    while all(p.poll() is None for p in procs.values()):
        assert time.monotonic() < deadline, "neither driver ended"
        time.sleep(0.2)
    loser = next(p for p in procs.values() if p.poll() is not None)
    winner = next(p for p in procs.values() if p is not loser)
    code, output = _finish(loser)
    assert code == 2, output
    assert "Traceback" not in output
    holder = f"(host {socket.gethostname()}, pid {winner.pid}, last heartbeat"
    assert "sweep 'demo' in" in output and holder in output, output
    assert winner.poll() is None, "the refused driver must not stop the running one"

    code, output = _finish(_driver(path, store_url, "--resume"), timeout=300)
    assert code == 2 and holder in output, output
    assert winner.poll() is None

    code, output = _finish(winner)
    assert code == 0, output[-3000:]
    _assert_exact(store_url)


def _ray_processes(driver: psutil.Process) -> list[psutil.Process]:
    return [p for p in driver.children(recursive=True) if "ray" in " ".join(p.cmdline()).lower()]


def test_resume_takes_over_a_killed_driver(
    sqlite_url: str, write_tiny_sweep, tmp_path: Path
) -> None:
    path = _tiny(write_tiny_sweep, tmp_path)
    first = _driver(path, sqlite_url)
    driver = psutil.Process(first.pid)
    try:
        deadline = time.monotonic() + 600
        while True:  # wait until a trial runs
            assert first.poll() is None, _finish(first)[1][-3000:]
            assert time.monotonic() < deadline, "no trial started"
            if _a_trial_runs(sqlite_url):
                break
            time.sleep(0.5)
        ray_procs = _ray_processes(driver)
        assert ray_procs, "no Ray processes under the driver"
        # a laptop run listens on loopback only (issue 18: raylet and gcs were on *:port)
        listening = {
            (p.name(), c.laddr.ip, c.laddr.port)
            for p in [driver, *ray_procs]
            for c in _listening(p)
        }
        assert listening, "Ray listens on no port at all?"
        loopback = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
        assert {ip for _, ip, _ in listening} <= loopback, sorted(listening)

        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
        # Ray's processes share the driver's fate: GCS, raylet and workers within seconds;
        # its two agents first report the raylet's death to the dead GCS, which Ray 2.60
        # gives 60 s (hard-coded in ray._private.utils.publish_error_to_driver)
        _, alive = psutil.wait_procs(ray_procs, timeout=120)
        assert not alive, [(p.pid, p.name()) for p in alive]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        for leftover in locals().get("ray_procs", []):
            with contextlib.suppress(psutil.Error):
                leftover.kill()

    code, output = _finish(_driver(path, sqlite_url), timeout=300)
    assert code == 2, output
    assert "has interrupted trials and no driver is running it" in output, output
    assert f"pid {first.pid}, its process is gone" in output, output

    code, output = _finish(_driver(path, sqlite_url, "--resume"))
    assert code == 0, output[-3000:]
    _assert_exact(sqlite_url)


def _a_trial_runs(url: str) -> bool:
    if not Path(url.removeprefix("sqlite:///")).exists():
        return False
    try:
        store = Store(url, upgrade=False)
    except StoreError:  # the driver is still creating the schema
        return False
    try:
        sweep = store.get_sweep("demo")
        stage = store.get_stage(sweep.id, "teachers") if sweep else None
        return stage is not None and any(
            t.status == TrialStatus.RUNNING for t in store.trials(stage.id)
        )
    finally:
        store.dispose()


def _listening(process: psutil.Process) -> list:
    try:
        return [c for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    except psutil.Error:
        return []
