"""A background CPU load for the tests that start Ray: a laptop running other work.

`cpu_load(8)` starts 8 CPU-bound Python processes that each stop by themselves after
`seconds` (so a killed test run leaves nothing spinning), and are killed when the block ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# How many CPU-bound processes the Ray-starting tests run beside them (CI sets 8).
ENV = "SWEEP_TEST_CPU_LOAD"
_SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


def load_from_env() -> int:
    return int(os.environ.get(ENV, "0") or 0)


@contextmanager
def cpu_load(processes: int, seconds: float = 180) -> Iterator[list[subprocess.Popen]]:
    """`processes` busy-looping children for at most `seconds`, or until the block ends."""
    spinners = [
        subprocess.Popen(
            [sys.executable, "-c", _SPIN.format(seconds=seconds)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    try:
        yield spinners
    finally:
        for proc in spinners:
            proc.kill()
        for proc in spinners:
            proc.wait()
