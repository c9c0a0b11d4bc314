"""Where a sweep writes: is an `output_dir`, a `cache_dir` or an MLflow tracking URI usable?
Asked once by the config checks, before anything is written.

A local path must be (or become) a directory this process can create folders in: the
check makes and removes one empty temporary folder in its nearest existing ancestor, so a
special file system that refuses writes (`/proc/x`) or a name longer than the file system
takes is refused here rather than by Ray Tune's first checkpoint. A URI must be one that
pyarrow (Ray Tune's storage layer) knows, and its bucket must answer within
`URI_PROBE_TIMEOUT_S`; an unreachable object store is refused with pyarrow's reason.

Example::

    assert local_dir_problem(Path("/proc/x")) is not None
    assert uri_problem("nosuch://bucket/runs") is not None
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

__all__ = [
    "URI_PROBE_TIMEOUT_S",
    "local_dir_problem",
    "mlflow_uri_problem",
    "shown_path",
    "uri_problem",
]

URI_PROBE_TIMEOUT_S = float(os.environ.get("SWEEP_URI_PROBE_TIMEOUT_S", "20"))
"""How long an object store may take to answer whether the output bucket is there."""
_SHOWN = 80  # characters of a path quoted in a message (a 100,000-character one is not)


def shown_path(path: Path | str) -> str:
    """The path as a message quotes it: whole, or its start and length when very long."""
    text = str(path)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text):,} characters)"


def local_dir_problem(path: Path) -> str | None:
    """Why `path` cannot be (or become) a directory this process writes in, or None."""
    name_max, path_max = _limits(path)
    if len(os.fsencode(str(path))) >= path_max:
        return (
            f"{shown_path(path)} is longer than this file system's {path_max - 1} bytes for a path"
        )
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            return (
                f"{shown_path(path)} has a folder name of {len(part):,} characters; this file "
                f"system takes at most {name_max}"
            )
    existing = path
    while not path_exists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing != path and not path_is_dir(existing):
        return f"{shown_path(existing)} is a file, so {shown_path(path)} cannot be created"
    if not path_is_dir(existing):
        return f"{shown_path(path)} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{shown_path(existing)} is not writable"
    try:  # root passes os.access on /proc and /sys; only a real attempt tells
        os.rmdir(tempfile.mkdtemp(prefix=".babysweep-probe-", dir=existing))
    except OSError as exc:
        return f"cannot create a folder in {shown_path(existing)} ({exc.strerror or exc})"
    return None


def uri_problem(uri: str, timeout_s: float = URI_PROBE_TIMEOUT_S) -> str | None:
    """Why checkpoints cannot go to `uri` (scheme unknown, bucket unreachable), or None."""
    import pyarrow.fs

    outcome: list[str | None] = []

    def probe() -> None:
        try:
            fs, path = pyarrow.fs.FileSystem.from_uri(uri)
            fs.get_file_info(path.split("/", 1)[0] or path)
        except Exception as exc:  # pyarrow raises many kinds; its text names the cause
            outcome.append(" ".join(str(exc).split()) or type(exc).__name__)
        else:
            outcome.append(None)

    scheme = uri.split("://", 1)[0]
    # a daemon thread: a store that never answers cannot keep the process alive after it
    worker = threading.Thread(target=probe, name="output-uri-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        return (
            f"{shown_path(uri)}: no answer from the {scheme} store within {timeout_s:g} s; "
            "check the bucket, the network and the credentials"
        )
    reason = outcome[0]
    if reason is None:
        return None
    if "Unrecognized filesystem type" in reason or "unknown scheme" in reason.lower():
        return (
            f"{shown_path(uri)}: unknown scheme {scheme!r}; use a local path or a URI "
            "Ray Tune can write to (s3://, gs://, hdfs://, file://)"
        )
    if len(reason) > 300:
        reason = reason[:300] + "..."
    return f"{shown_path(uri)}: cannot reach it ({reason}); check the bucket and credentials"


# MLflow tracking stores this version of MLflow opens (its file store is retired: it raises)
_MLFLOW_DATABASES = {"sqlite", "postgresql", "mysql", "mssql"}
_MLFLOW_SERVERS = {"http", "https", "databricks", "databricks-uc", "uc"}


def mlflow_uri_problem(uri: str) -> str | None:
    """Why MLflow cannot track to `uri`, or None; decided from the URI alone, writing nothing
    (MlflowClient would create the database to find out)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri else ""
    if scheme in _MLFLOW_SERVERS:
        return None
    if scheme in _MLFLOW_DATABASES:
        if scheme != "sqlite":
            return None
        database = uri.split("://", 1)[1].removeprefix("/")
        if not database or ":memory:" in database:
            return f"{uri} is an in-memory database, which keeps nothing; name a file"
        problem = local_dir_problem(Path(database).parent)
        return f"{shown_path(uri)}: {problem}" if problem else None
    if not scheme or scheme == "file":
        return (
            f"{shown_path(uri)}: MLflow's file store is retired in this MLflow; use "
            "sqlite:///path/mlflow.db (the default when unset) or an MLflow server http://host:5000"
        )
    return (
        f"{shown_path(uri)}: unknown scheme {scheme!r}; use http(s)://host:port, "
        "sqlite:///path/mlflow.db or postgresql://user@host/db"
    )


def _limits(path: Path) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX of the file system the path would live on."""
    existing = path
    while not path_exists(existing) and existing != existing.parent:
        existing = existing.parent
    try:
        return os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 255, 4096


def path_is_dir(path: Path) -> bool:
    # Python 3.11's Path.is_dir raises on a name too long or with a NUL; that is "no" here.
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def path_exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
