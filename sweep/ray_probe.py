"""Is anything listening at the configured Ray address? Asked before `ray.init` joins it.

Ray's own join retries an address where nothing listens forever, in C++ that does not see
Ctrl-C (`ray_address: 127.0.0.1:1` loops "Failed to connect to GCS" until SIGKILL). A TCP
connect to the head's port, retried with backoff for at most `RAY_CONNECT_TIMEOUT_S`,
answers the same question in bounded time and in Python, where Ctrl-C is honoured.

Example::

    wait_for_ray_head("10.0.0.5:6379", timeout_s=30)  # returns, or raises SweepError
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from sweep.errors import SweepError

__all__ = ["RAY_CONNECT_TIMEOUT_S", "wait_for_ray_head"]

RAY_CONNECT_TIMEOUT_S = float(os.environ.get("SWEEP_RAY_CONNECT_TIMEOUT_S", "30"))
"""How long `sweep run` waits for the Ray head's port to accept a connection."""


def wait_for_ray_head(
    address: str,
    *,
    timeout_s: float | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> None:
    """Return once host:port (or ray://host:port) accepts a TCP connection; raise
    SweepError naming the address, the tries and the last reason when it never does.

    `timeout_s` defaults to RAY_CONNECT_TIMEOUT_S. `say` gets one line when the first try fails. `auto` and `local` name no port and are
    left to Ray.
    """
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")
    timeout_s = RAY_CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    tries, delay, reason = 0, 0.5, "no answer"
    try:
        while True:
            tries += 1
            left = deadline - time.monotonic()
            try:
                with socket.create_connection((host, int(port)), timeout=max(0.5, min(5, left))):
                    return
            except OSError as exc:
                reason = exc.strerror or str(exc) or type(exc).__name__
            if tries == 1:
                say(
                    f"ray_address: {address} does not answer ({reason}); retrying for {timeout_s:g} s"
                )
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)
    except KeyboardInterrupt:
        raise SweepError(
            f"ray_address: interrupted while waiting for {address} ({reason}, {tries} tries)"
        ) from None
    raise SweepError(
        f"ray_address: nothing answers at {address} ({reason}; {tries} tries in "
        f"{timeout_s:g} s); start the cluster's head (ray start --head) or fix the address, "
        "or leave it unset for a local Ray"
    )
