"""The sweep lease on both backends: one holder, takeover rules, fenced writes after a takeover.

The drivers here are real processes (this one, a child that exits, a child killed with
SIGKILL); the two-`sweep run` race is tests/sweep/test_one_driver.py.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.process import BaseProcess

import pytest
import sqlalchemy as sa

from sweep.errors import LeaseLost
from sweep.lease import LeaseHeld, SweepLease, describe_holder
from sweep.store import Store, TrialStatus
from sweep.store.models import SweepLease as LeaseTable
from sweep.store.models import utcnow


def _age_lease(store: Store, name: str, seconds: float) -> None:
    """Make the holder's last heartbeat `seconds` old (a silent driver on another host)."""
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(LeaseTable)
            .where(LeaseTable.sweep_name == name)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds), host="other-host")
        )


def test_a_second_driver_is_refused_while_the_holder_beats(store: Store) -> None:
    first = SweepLease(store, "demo", timeout_s=30)
    assert first.acquire() is None
    second = SweepLease(store, "demo", timeout_s=30)
    with pytest.raises(LeaseHeld) as refused:
        second.acquire()
    message = str(refused.value)
    assert "\n" not in message
    assert f"host {socket.gethostname()}, pid {os.getpid()}" in message
    assert "last heartbeat 0 s ago" in message
    assert store.get_lease("demo").owner == first.owner  # type: ignore[union-attr]
    # other sweeps are not affected
    assert SweepLease(store, "other", timeout_s=30).acquire() is None
    first.release()
    assert store.get_lease("demo") is None
    assert second.acquire() is None


def test_a_silent_holder_is_taken_over_after_the_timeout(store: Store) -> None:
    holder = SweepLease(store, "demo", timeout_s=30)
    holder.acquire()
    _age_lease(store, "demo", 10)
    with pytest.raises(LeaseHeld, match="last heartbeat 10 s ago"):
        SweepLease(store, "demo", timeout_s=30).acquire()
    _age_lease(store, "demo", 31)
    taker = SweepLease(store, "demo", timeout_s=30)
    previous = taker.acquire()
    assert previous is not None and previous.owner == holder.owner
    assert "no heartbeat for over 30 s" in taker.replaced_because
    # the old holder learns it on its next heartbeat, and its writes are refused
    assert store.renew_lease("demo", holder.owner) is False
    assert store.renew_lease("demo", taker.owner) is True


def test_a_holder_killed_on_this_host_is_taken_over_at_once(store: Store, store_url: str) -> None:
    code = (
        "import sys, time; from sweep.store import Store; from sweep.lease import SweepLease; "
        "lease = SweepLease(Store(sys.argv[1]), 'demo'); lease.acquire(); "
        "print('held', flush=True); time.sleep(600)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, store_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeld, match=f"pid {child.pid}"):
            SweepLease(store, "demo", timeout_s=3600).acquire()
        assert describe_holder(store, "demo").startswith("driver: host")
        os.kill(child.pid, signal.SIGKILL)
        time.sleep(0.5)  # not reaped yet: a zombie counts as gone
        taker = SweepLease(store, "demo", timeout_s=3600)
        previous = taker.acquire()
        assert previous is not None and previous.pid == child.pid
        assert taker.replaced_because == "its process is gone"
    finally:
        child.kill()
        child.wait()


def test_writes_after_a_takeover_are_refused(store: Store, store_url: str) -> None:
    """The fence: a taken-over driver's next write fails in its own transaction."""
    sweep_id = store.upsert_sweep("demo", config={}, config_hash="h", code_version="t")
    stage_id = store.upsert_stage(sweep_id, "teachers")
    old = SweepLease(store, "demo", timeout_s=30)
    old.acquire()
    store.fence("demo", old.owner)
    trial_id = store.upsert_trial(stage_id, 0, role="teacher", params={}, seed=0)
    _age_lease(store, "demo", 60)
    other = Store(store_url)
    try:
        SweepLease(other, "demo", timeout_s=30).acquire()
        with pytest.raises(LeaseLost, match="another driver took over"):
            store.finish_trial(trial_id, TrialStatus.COMPLETE, objective=1.0)
        with pytest.raises(LeaseLost):
            store.add_metrics(trial_id, 1, {"dev_loss": 1.0})
        (row,) = other.trials(stage_id)
        assert row.status == TrialStatus.RUNNING and store.trial_metrics(trial_id) == {}
    finally:
        store.fence("demo", None)
        other.dispose()


def test_heartbeat_keeps_the_lease_fresh_and_notices_a_takeover(store: Store) -> None:
    lease = SweepLease(store, "demo", timeout_s=2.0, heartbeat_s=0.2)
    lease.acquire()
    # interrupt_main would stop the test runner: the heartbeat is checked from the outside
    with lease.heartbeat():
        time.sleep(2.0)
        row = store.get_lease("demo")
        # without beats the row would be 2 s old; with one every 0.2 s it is far younger
        # (1.2 s of slack for a loaded CI machine)
        assert row is not None and row.age_s(utcnow()) < 1.4
        store.release_lease("demo", lease.owner)  # as if another driver took it
        SweepLease(store, "demo", timeout_s=2.0).acquire()
        with pytest.raises(KeyboardInterrupt):
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.05)
    assert lease.lost.is_set()
    assert "another driver took the sweep over" in lease.lost_message()


def _race(url: str, barrier, results) -> None:  # a forked process
    store = Store(url)
    lease = SweepLease(store, "demo", timeout_s=30)
    barrier.wait()
    try:
        lease.acquire()
        results.put(("held", os.getpid()))
        time.sleep(2)  # still holding while the others try
    except LeaseHeld as exc:
        results.put(("refused", exc.holder.pid))
    store.dispose()


def test_four_drivers_starting_together_one_wins(
    store_url: str, child_processes: Callable[..., BaseProcess]
) -> None:
    Store(store_url).dispose()  # the schema exists: the race is for the lease alone
    ctx = multiprocessing.get_context("fork")  # forked: the race starts in milliseconds
    barrier, results = ctx.Barrier(4, timeout=120), ctx.Queue()
    procs = [child_processes("fork", _race, store_url, barrier, results) for _ in range(4)]
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    held = [pid for kind, pid in outcomes if kind == "held"]
    assert len(held) == 1, outcomes
    assert all(pid == held[0] for kind, pid in outcomes if kind == "refused")
