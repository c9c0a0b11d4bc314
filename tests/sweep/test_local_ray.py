"""The local Ray of `sweep run` comes up on a busy machine (issue 27, item 1).

Ray 2.60's raylet gives its agents a fixed 15 s to write their port files and the driver
waits for a dashboard it does not use; sweep.local_ray leaves those out through four hooks
of Ray's private node API, checked here so a Ray upgrade that moves them fails loudly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweep.local_ray import LocalRayError, start_local_ray
from tests.cpu_load import cpu_load, load_from_env

REPO = Path(__file__).resolve().parents[2]
SWEEP = str(Path(sys.executable).parent / "sweep")


def test_the_ray_hooks_the_lean_start_relies_on_exist() -> None:
    import inspect

    from ray._private import node, parameter
    from ray._raylet import DASHBOARD_AGENT_LISTEN_PORT_NAME, persist_port

    assert DASHBOARD_AGENT_LISTEN_PORT_NAME and callable(persist_port)
    assert "head" in inspect.signature(node.Node.__init__).parameters
    assert {"include_dashboard", "raise_on_failure"} <= set(
        inspect.signature(node.Node.start_api_server).parameters
    )
    assert callable(node.Node.start_raylet)
    fields = inspect.signature(parameter.RayParams.__init__).parameters
    for field in (
        "metrics_agent_port",
        "metrics_export_port",
        "dashboard_agent_listen_port",
        "runtime_env_agent_port",
        "no_monitor",
        "include_log_monitor",
    ):
        assert field in fields, field


_RETRY_PROBE = """
import ray
from ray._private import node
from sweep.local_ray import LocalRayError, start_local_ray

hooks = (node.Node.__init__, node.Node.start_raylet, node.Node.start_api_server)
retries = []
try:
    start_local_ray(num_cpus=-1, on_retry=retries.append)  # Ray refuses it at start
except LocalRayError as exc:
    refused = str(exc)
else:
    raise SystemExit("started")
assert "nonnegative" in refused, refused
assert len(retries) == 1 and "nonnegative" in retries[0], retries
assert not ray.is_initialized()
# the hooks are Ray's own again after a failed start
assert (node.Node.__init__, node.Node.start_raylet, node.Node.start_api_server) == hooks
print("probe ok")
"""


def test_a_start_that_fails_is_retried_once_with_a_line_then_refused() -> None:
    # Its own process: the session's Ray (ray_local) must neither interfere nor be touched.
    done = subprocess.run(
        [sys.executable, "-c", _RETRY_PROBE], capture_output=True, text=True, timeout=600,
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0 and "probe ok" in done.stdout, done.stderr[-2000:]


def test_a_second_start_in_a_process_with_a_ray_is_refused_and_keeps_that_ray(
    ray_local: None,
) -> None:
    import ray

    with pytest.raises(LocalRayError, match="already has a Ray"):
        start_local_ray(num_cpus=1)
    assert ray.is_initialized()
    assert ray.get(ray.put(7)) == 7  # the session's Ray still serves


@pytest.mark.slow
def test_the_default_study_starts_its_trials_under_a_cpu_load(tmp_path: Path) -> None:
    """`sweep run sweep.yaml`, the default study, beside 8 busy processes on this machine
    ($SWEEP_TEST_CPU_LOAD, at least 8): its local Ray starts and its first trial reports."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    with cpu_load(max(load_from_env(), 8), seconds=240):
        driver = subprocess.Popen(
            [SWEEP, "run", "sweep.yaml", "--storage", url, "--output-dir", str(tmp_path / "runs")],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RAY_ADDRESS": ""},
            start_new_session=True,
        )
        try:
            reported = False
            deadline = time.monotonic() + 600  # a limit for the wait, not a timing claim
            while time.monotonic() < deadline and driver.poll() is None and not reported:
                time.sleep(1)
                reported = _a_trial_reported(url)
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(driver.pid, signal.SIGKILL)
            _, stderr = driver.communicate()
    assert reported, f"no trial reported an epoch (exit {driver.returncode}): {stderr[-2000:]}"


def _a_trial_reported(url: str) -> bool:
    """A trial of the sweep has a metric row: Ray started and a trial ran an epoch."""
    import sqlalchemy as sa

    if not Path(url.removeprefix("sqlite:///")).exists():
        return False
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if "trial_metric" not in sa.inspect(conn).get_table_names():
                return False
            return bool(conn.execute(sa.text("SELECT count(*) FROM trial_metric")).scalar())
    except sa.exc.OperationalError:  # a writer holds it now; ask again next second
        return False
    finally:
        engine.dispose()
