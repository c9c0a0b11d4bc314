"""One driver per sweep: a lease row in the store, renewed by a heartbeat thread.

`sweep run` takes the lease before it writes anything. A second driver (with or without
--resume) is refused while the holder's heartbeat is fresh; it takes over a lease whose
heartbeat is older than the timeout, or at once when the holder ran on this host and its
process is gone (kill -9). Every store write of the holder checks the lease in its own
transaction (`Store.fence`), so a driver that was taken over never writes again; its
heartbeat thread notices and stops it as Ctrl-C would.

Heartbeat times are each driver's UTC clock: drivers on different hosts need clocks
within a few seconds of each other (NTP), far below the timeout.
"""

from __future__ import annotations

import _thread
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sweep.errors import StoreError, SweepError
from sweep.store import LeaseRow, Store

__all__ = [
    "HEARTBEAT_S",
    "LEASE_TIMEOUT_ENV",
    "LEASE_TIMEOUT_S",
    "LeaseHeld",
    "SweepLease",
    "describe_holder",
]

HEARTBEAT_S = 5.0
"""Seconds between heartbeats of the holder (a third of the timeout when that is shorter)."""
LEASE_TIMEOUT_S = 30.0
"""A lease whose heartbeat is older than this may be taken over (`--lease-timeout`)."""
LEASE_TIMEOUT_ENV = "SWEEP_LEASE_TIMEOUT_S"

logger = logging.getLogger(__name__)


class LeaseHeld(SweepError):
    """Another driver runs this sweep and is alive."""

    def __init__(self, message: str, holder: LeaseRow) -> None:
        super().__init__(message)
        self.holder = holder


def _now() -> datetime:
    return datetime.now(UTC)


def _process_started(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def process_gone(holder: LeaseRow) -> bool:
    """True when the holder ran on this host and its process no longer runs (a zombie, or
    another process that reused its pid, counts as gone)."""
    import psutil

    if holder.host != socket.gethostname():
        return False
    try:
        process = psutil.Process(holder.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        started = process.create_time()
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, OSError):
        return False  # cannot tell (another user's process): assume it is alive
    return holder.pid_started is not None and abs(started - holder.pid_started) > 1.0


def describe_holder(store: Store, sweep_name: str, timeout_s: float = LEASE_TIMEOUT_S) -> str:
    """For `sweep status`: who runs the sweep now, in a few words."""
    holder = store.get_lease(sweep_name)
    if holder is None:
        return "no driver is running it"
    state = "gone" if process_gone(holder) else None
    if state is None and holder.age_s(_now()) > timeout_s:
        state = "not beating"
    note = f" ({state}; `sweep run --resume` takes over)" if state else ""
    return f"driver: {holder.describe(_now())}{note}"


class SweepLease:
    """The lease of one sweep held by this process::

    lease = SweepLease(store, "demo")
    previous = lease.acquire()        # LeaseHeld while another driver is alive
    with lease.heartbeat():           # renews it; every store write now checks it
        ...
    lease.release()
    """

    def __init__(
        self,
        store: Store,
        sweep_name: str,
        *,
        timeout_s: float = LEASE_TIMEOUT_S,
        heartbeat_s: float | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise SweepError(f"--lease-timeout: {timeout_s:g} s; give a positive number of seconds")
        # at least three beats per timeout, so one slow write never makes a live driver stale
        heartbeat_s = heartbeat_s or min(HEARTBEAT_S, timeout_s / 3)
        if heartbeat_s >= timeout_s:
            raise SweepError(
                f"--lease-timeout: {timeout_s:g} s must exceed the heartbeat ({heartbeat_s:g} s)"
            )
        self.store, self.sweep_name = store, sweep_name
        self.timeout_s, self.heartbeat_s = timeout_s, heartbeat_s
        self.owner = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.lost = threading.Event()
        self.lost_reason = "another driver took it over"
        self.held = False
        self.replaced: LeaseRow | None = None  # the dead or silent holder taken over
        self.replaced_because = ""

    def acquire(self) -> LeaseRow | None:
        """Take the lease; returns the dead or silent holder it replaced (None if free)."""
        reasons: dict[str, str] = {}

        def may_take_over(holder: LeaseRow) -> bool:
            if process_gone(holder):
                reasons[holder.owner] = "its process is gone"
                return True
            if holder.age_s(_now()) > self.timeout_s:
                reasons[holder.owner] = f"no heartbeat for over {self.timeout_s:.0f} s"
                return True
            return False

        taken, holder = self.store.acquire_lease(
            self.sweep_name,
            owner=self.owner,
            host=self.host,
            pid=self.pid,
            pid_started=_process_started(self.pid),
            may_take_over=may_take_over,
        )
        if not taken:
            assert holder is not None
            raise LeaseHeld(
                f"sweep {self.sweep_name!r} in {self.store.masked_url} is being run by another "
                f"driver ({holder.describe(_now())}); wait for it to end or stop it (a stopped "
                f"driver's lease is taken over by `sweep run --resume` on its host at once, "
                f"elsewhere once its heartbeat is {self.timeout_s:.0f} s old)",
                holder,
            )
        self.held = True
        self.replaced = holder
        self.replaced_because = reasons.get(holder.owner, "") if holder else ""
        return holder

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renew the lease every heartbeat_s and fence the store's writes with it."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self._beat, args=(stop,), name="sweep-lease-heartbeat", daemon=True
        )
        self.store.fence(self.sweep_name, self.owner)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=10)
            self.store.fence(self.sweep_name, None)

    def _beat(self, stop: threading.Event) -> None:
        last_ok = _now()
        while not stop.wait(self.heartbeat_s):
            try:
                if self.store.renew_lease(self.sweep_name, self.owner):
                    last_ok = _now()
                    continue
                reason = "another driver took the sweep over"
            except StoreError as exc:  # unreachable: keep trying until others may take over
                if (_now() - last_ok).total_seconds() < self.timeout_s:
                    logger.warning("sweep lease heartbeat failed (%s); retrying", exc)
                    continue
                reason = f"the store was unreachable for {self.timeout_s:.0f} s"
            logger.error("lost the lease of sweep %r: %s; stopping", self.sweep_name, reason)
            self.lost_reason = reason
            self.lost.set()
            if not stop.is_set():
                _thread.interrupt_main()  # stops the Tuner as Ctrl-C does
            return

    def lost_message(self) -> str:
        return (
            f"stopped: lost the lease of sweep {self.sweep_name!r} "
            f"({self.lost_reason}); this driver "
            "wrote nothing after that. See `sweep status`"
        )

    def release(self) -> None:
        """Give the lease up; never raises (the store may be gone by now)."""
        if not self.held:
            return
        self.held = False
        try:
            self.store.release_lease(self.sweep_name, self.owner)
        except StoreError as exc:
            logger.warning("could not release the sweep lease (%s); it goes stale", exc)
