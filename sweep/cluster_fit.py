"""Can any node give a trial the resources its stage asks for?

Ray Tune queues a trial that no node can place and waits for one to appear: on a local Ray
(one node, this machine) that is forever, silently ("teachers: 0 running"). A trial must fit
on one node, so each trial stage's `resources` is compared with the largest node:

- `local_resource_problems(config)`: before anything is written (validate and run), a
  local Ray is this machine: more CPUs than it has, or a GPU where it has none, is refused;
- `cluster_resource_problems(stages, nodes)`: once Ray is up, against the nodes it
  reports; `sweep run` refuses on a local Ray and says so (and keeps going) on a cluster,
  where an autoscaler may still add a node that fits.

Example::

    for line in local_resource_problems(config):
        print(line)  # stages.teachers.resources.cpu: 64 CPUs per trial, but ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["cluster_resource_problems", "local_cpus", "local_resource_problems"]


def local_cpus() -> int:
    """CPUs a local Ray will see on this machine (the ones this process may run on)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS has no affinity
        return os.cpu_count() or 1


def _local_gpus() -> int:
    import torch  # only asked when a stage wants a GPU

    return torch.cuda.device_count()


def _wanted(config: Any) -> Iterator[tuple[str, float, float]]:
    """(stage name, cpu, gpu) of each stage that runs trials."""
    for name, stage in config.stages.items():
        resources = getattr(stage, "resources", None)
        if resources is not None:
            yield name, resources.cpu, resources.gpu


def local_resource_problems(config: Any, stages: Iterable[str] | None = None) -> Iterator[str]:
    """Trial resources this machine can never give a local Ray (none when joining a cluster),
    for the declared `stages` that will run (all of them by default)."""
    if config.ray_address and config.ray_address != "local":
        return
    cpus = local_cpus()
    gpus: int | None = None
    running = None if stages is None else set(stages)
    for name, cpu, gpu in _wanted(config):
        if running is not None and name not in running:
            continue
        if cpu > cpus:
            yield (
                f"stages.{name}.resources.cpu: {cpu:g} CPUs per trial, but this machine's "
                f"local Ray has {cpus}; a trial would wait forever. Lower it, or join a "
                "cluster with --address"
            )
        if gpu > 0:
            gpus = _local_gpus() if gpus is None else gpus
            if gpu > gpus:
                have = f"{gpus} GPU{'s' if gpus != 1 else ''}" if gpus else "no GPU"
                yield (
                    f"stages.{name}.resources.gpu: {gpu:g} per trial, but this machine has "
                    f"{have}; a trial would wait forever. Set gpu: 0, or join a GPU cluster "
                    "with --address"
                )


def cluster_resource_problems(
    config: Any, stages: Iterable[str], nodes: Iterable[Mapping[str, Any]]
) -> list[str]:
    """One line per stage whose trial fits on none of the alive nodes (`ray.nodes()`)."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    largest_cpu = max((float(r.get("CPU", 0)) for r in alive), default=0.0)
    largest_gpu = max((float(r.get("GPU", 0)) for r in alive), default=0.0)
    lines = []
    for name, cpu, gpu in _wanted(config):
        if name not in stages:
            continue
        fits = any(float(r.get("CPU", 0)) >= cpu and float(r.get("GPU", 0)) >= gpu for r in alive)
        if not fits:
            lines.append(
                f"stages.{name}.resources: a trial asks for {cpu:g} CPU and {gpu:g} GPU, "
                f"but no node of the Ray cluster has that (largest: {largest_cpu:g} CPU, "
                f"{largest_gpu:g} GPU)"
            )
    return lines
