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
        "print('ALIVE', sum(n['Alive'] for n in ray.nodes()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=CLUSTER_ENV
    )
    # Ray may print warnings (lagging heartbeats) to stdout too: read only our marked line.
    counts = [ln.split()[1] for ln in out.stdout.splitlines() if ln.startswith("ALIVE ")]
    return int(counts[-1]) if out.returncode == 0 and counts else 0


# the `ray start --block` process of each cluster's worker node, by head address
_WORKER_NODES: dict[str, subprocess.Popen] = {}


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
        _WORKER_NODES[address] = worker
        deadline = time.monotonic() + 120
        while _alive_nodes(address) < 2:
            assert time.monotonic() < deadline, (tmp_path / "head.log").read_text()[-2000:]
            time.sleep(2)
        yield address
    finally:
        _WORKER_NODES.pop(address, None)
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
        "repeats": 3,  # one seed each of the best teacher, best student and its alpha=1 control
    }
    repeats = trials[trials.stage == "repeats"]
    assert sorted(repeats["role"]) == ["baseline", "student", "teacher"]
    assert set(trials["status"]) == {"COMPLETE"}
    assert trials["node"].notna().all()
    assert trials["node"].nunique() == 2, "every trial ran on one node"
    # students on either node loaded the ensemble's teacher checkpoints
    students = trials[trials.stage == "students"]
    assert all(len(t) == 2 for t in students["teacher_ids"])
    assert students["blimp_overall"].notna().all()


def _teacher_trials(url: str) -> list:
    """The teacher stage's trials in the store (empty until the driver has written them)."""
    from sweep.store import Store, StoreError

    try:
        store = Store(url, upgrade=False)
    except StoreError:
        return []
    try:
        sweep = store.get_sweep("demo")
        stage = store.get_stage(sweep.id, "teachers") if sweep else None
        return store.trials(stage.id) if stage else []
    finally:
        store.dispose()


def test_a_lost_worker_node_loses_no_trial(
    two_node_cluster: str, postgres_url: str, write_tiny_sweep, tmp_path: Path
) -> None:
    """Kill the worker node (its raylet and everything it started) while a trial runs there:
    Tune retries that trial (max_failures: 1) on the head node, the other trial finishes,
    and the store and Optuna count exactly two finished trials."""
    import optuna

    path = write_tiny_sweep(
        tmp_path,
        **{
            "stages.teachers.trials": 2,
            "stages.teachers.epochs": 5,
            "stages.teachers.max_failures": 1,
            "data.max_train_tokens": 160_000,  # ~20 s epochs: long enough to kill a node mid-trial
        },
    )
    driver = subprocess.Popen(
        [str(BIN / "sweep"), "run", str(path), "--stage", "teachers",
         "--address", two_node_cluster, "--storage", postgres_url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=CLUSTER_ENV,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while True:  # both trials reported an epoch, each from its own node (1 CPU each)
            assert driver.poll() is None, driver.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the trials never ran on both nodes"
            running = [t for t in _teacher_trials(postgres_url) if t.status == "RUNNING"]
            if len({t.node for t in running if t.node}) == 2:
                break
            time.sleep(0.3)
        os.killpg(_WORKER_NODES[two_node_cluster].pid, signal.SIGKILL)
        lost = time.monotonic() + 180
        while _alive_nodes(two_node_cluster) != 1:  # the cluster saw the node go
            assert time.monotonic() < lost, "the worker node still counts as alive"
            time.sleep(2)
        out, _ = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert driver.returncode == 0, out[-3000:]
    trials = _teacher_trials(postgres_url)
    assert [t.number for t in trials] == [0, 1]
    for t in trials:  # retried to completion, or failed naming the lost node
        assert t.status == "COMPLETE" or (
            t.status == "FAILED" and any(w in (t.error or "") for w in ("node", "Node", "died"))
        ), (t.status, t.error)
    assert any(t.status == "COMPLETE" for t in trials)
    assert len({t.node for t in trials}) == 2, "no trial ran on the lost node"
    study = optuna.load_study(study_name="demo/teachers", storage=postgres_url)
    states = {"COMPLETE": "COMPLETE", "FAILED": "FAIL"}
    assert [(t.number, t.state.name) for t in study.trials] == [
        (t.number, states[t.status]) for t in trials
    ]
