"""A real two-node Ray cluster on one machine: a tiny sweep with --address on PostgreSQL.

The head and the second node are separate `ray start --block` processes (as on a real
cluster), each in its own process group, so teardown kills exactly them even when the
test fails, and never the other Ray instances of the session. Ray 2.60 turns token
authentication on by default: every process of the cluster shares one token, as in
docker/compose.yaml.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sweep.store import read_trials

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
CLUSTER_ENV = {
    **os.environ,
    "RAY_ADDRESS": "",
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(32),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=CLUSTER_ENV,
    )


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(20)
            return
        except subprocess.TimeoutExpired:
            continue


def _alive_nodes(address: str) -> int:
    probe = (
        f"import ray; ray.init(address='{address}', logging_level='ERROR'); "
        "print(sum(n['Alive'] for n in ray.nodes()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=CLUSTER_ENV
    )
    lines = out.stdout.strip().splitlines()
    return int(lines[-1]) if out.returncode == 0 and lines else 0


@pytest.fixture
def two_node_cluster(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = _start(
        ["--head", "--num-cpus", "1", "--port", str(port), "--include-dashboard", "false"],
        tmp_path / "head.log",
    )
    worker = None
    try:
        time.sleep(5)
        worker = _start(["--address", address, "--num-cpus", "1"], tmp_path / "worker.log")
        deadline = time.monotonic() + 120
        while _alive_nodes(address) < 2:
            assert time.monotonic() < deadline, (tmp_path / "head.log").read_text()[-2000:]
            time.sleep(2)
        yield address
    finally:
        if worker is not None:
            _stop(worker)
        _stop(head)
        # `ray start` recorded this cluster for later `ray.init()` calls; it is gone now
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


def test_sweep_spreads_trials_over_two_nodes(
    two_node_cluster: str, postgres_url: str, write_tiny_sweep, tmp_path: Path
) -> None:
    path = write_tiny_sweep(
        tmp_path,
        **{
            "stages.teachers.trials": 4,
            "stages.teachers.scheduler.type": "none",
            "stages.students.trials": 2,
            "stages.baselines.top_n": 1,
            "stages.repeats.seeds": 1,
        },
    )
    run = subprocess.run(
        [
            str(BIN / "sweep"),
            "run",
            str(path),
            "--address",
            two_node_cluster,
            "--storage",
            postgres_url,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=CLUSTER_ENV,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    trials = read_trials(postgres_url, "demo")
    assert trials.groupby("stage").size().to_dict() == {
        "teachers": 4,
        "students": 2,
        "baselines": 1,
        "repeats": 2,
    }
    assert set(trials["status"]) == {"COMPLETE"}
    assert trials["node"].notna().all()
    assert trials["node"].nunique() == 2, "every trial ran on one node"
    # students on either node loaded the ensemble's teacher checkpoints
    students = trials[trials.stage == "students"]
    assert all(len(t) == 2 for t in students["teacher_ids"])
    assert students["blimp_overall"].notna().all()
