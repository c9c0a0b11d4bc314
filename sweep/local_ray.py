"""A local Ray that comes up on a busy laptop: only the processes a one-machine sweep needs.

`ray.init(address="local")` starts, beside the GCS and the raylet, a dashboard head (even with
`include_dashboard=False`, and it waits up to 60 s for it), an autoscaler monitor, a log
monitor and usage stats; and the raylet gives its dashboard and runtime-env agents a fixed 15 s
to write their port files, then aborts ("The current node timed out during startup"). On a
2-core machine at load 8+ the agents' Python imports alone take longer. A local sweep needs
none of the dashboard, the monitors or usage stats, and the agents' ports can be chosen up
front so the raylet never waits on those files: the agents still start, in their own time.

Ray has no public switch for these, so `_lean_head_node` adjusts the head node's parameters
while `ray.init` builds it (tests/sweep/test_local_ray.py fails if a Ray upgrade changes the
hooks). A start that still fails is retried once, with a line saying so.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

# The agent ports the raylet otherwise waits 15 s for the agents to write to files.
_AGENT_PORTS = (
    "metrics_agent_port",
    "metrics_export_port",
    "dashboard_agent_listen_port",
    "runtime_env_agent_port",
)
ATTEMPTS = 2


class LocalRayError(RuntimeError):
    """A local Ray did not start, after the retry; the message is Ray's first line."""


def start_local_ray(
    *,
    num_cpus: int | None = None,
    on_retry: Callable[[str], None] | None = None,
    **init_kwargs: Any,
) -> None:
    """`ray.init` a new local Ray owned by this process, lean enough for a loaded machine.

    Tries twice; before the second try `on_retry` gets a one-line reason. Raises
    LocalRayError with Ray's first line when both fail.
    """
    import ray

    if ray.is_initialized():  # a failed retry would shut down the Ray this process already has
        raise LocalRayError("this process already has a Ray; use it rather than start another")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {
        "address": "local",  # a new Ray of this process, never a stale cluster in /tmp/ray
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        **init_kwargs,
    }
    if num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    reason = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with _lean_head_node():
                ray.init(**kwargs)
            return
        except Exception as exc:  # Ray raises Exception, RuntimeError, ConnectionError...
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            ray.shutdown()  # whatever half of it started
            if attempt < ATTEMPTS and on_retry is not None:
                on_retry(reason)
    raise LocalRayError(reason)


@contextmanager
def _lean_head_node() -> Iterator[None]:
    """While it is open, a head node that `ray.init` starts leaves out what a local sweep
    does not use and pre-selects its agents' ports."""
    from ray._private import node as ray_node
    from ray._raylet import (  # type: ignore[attr-defined]  # compiled, no stubs
        DASHBOARD_AGENT_LISTEN_PORT_NAME,
        persist_port,
    )

    original_init = ray_node.Node.__init__

    def lean_init(self: Any, ray_params: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("head", args[0] if args else False):
            ray_params.no_monitor = True  # the autoscaler's: one fixed node
            ray_params.include_log_monitor = False  # log_to_driver=False reads none
            for field, port in zip(_AGENT_PORTS, _free_ports(len(_AGENT_PORTS)), strict=True):
                if not getattr(ray_params, field, None):
                    setattr(ray_params, field, port)
        original_init(self, ray_params, *args, **kwargs)

    original_start_raylet = ray_node.Node.start_raylet

    def start_raylet(self: Any, *args: Any, **kwargs: Any) -> None:
        # The raylet takes the other agent ports as flags but reads this one from its file.
        persist_port(
            self._session_dir,
            self._node_id,
            DASHBOARD_AGENT_LISTEN_PORT_NAME,
            self._ray_params.dashboard_agent_listen_port,
        )
        original_start_raylet(self, *args, **kwargs)

    def no_api_server(self: Any, **_: Any) -> None:
        """The dashboard head: a local sweep shows its own table; the driver would wait up to
        60 s for it to register."""

    with ExitStack() as undo:
        for name, replacement in (
            ("__init__", lean_init),
            ("start_raylet", start_raylet),
            ("start_api_server", no_api_server),
        ):
            undo.callback(setattr, ray_node.Node, name, getattr(ray_node.Node, name))
            setattr(ray_node.Node, name, replacement)
        yield


def _free_ports(n: int) -> list[int]:
    """n distinct loopback ports free now (held together, so no two are the same)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
