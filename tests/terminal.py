"""Run a command in a pseudo-terminal of a given size and read everything it writes there:
what a person sees in an 80-column terminal (rich and tqdm draw for a terminal only)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import termios
from collections.abc import Mapping, Sequence
from pathlib import Path


def run_in_terminal(
    argv: Sequence[str],
    *,
    columns: int = 80,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> tuple[int, str]:
    """Exit code and output of `argv` in a `columns`-wide terminal (COLUMNS/LINES unset, so
    the program asks the terminal its size)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        list(argv), stdin=follower, stdout=follower, stderr=follower, cwd=cwd,
        env={**base, "TERM": "xterm", **(env or {})},
    )  # fmt: skip
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    return proc.wait(timeout=timeout), out.decode(errors="replace")
