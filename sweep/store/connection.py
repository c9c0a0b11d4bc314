"""Database URLs and engines: masking, dialect checks, SQLite pragmas, driver errors -> StoreError.

Transient errors are recognised by code, never by message text (`classify`): a lost
connection by SQLAlchemy's `connection_invalidated` flag and PostgreSQL's SQLSTATE, a writer
collision by SQLite's result code or PostgreSQL's SQLSTATE; `retry_transient` is the one
retry loop over both.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from sweep.errors import StoreError

logger = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "SQLITE_BUSY_TIMEOUT_S",
    "Transient",
    "classify",
    "create_store_engine",
    "describe_driver_error",
    "is_disconnect",
    "is_retryable",
    "mask_url",
    "parse_store_url",
    "reader_engine",
    "retry_transient",
    "retry_while_disconnected",
    "sqlite_file",
    "sqlite_slashes_hint",
    "translate_driver_errors",
]

SQLITE_BUSY_TIMEOUT_S = 30.0
SQLITE_POLL_S = 5.0
POSTGRES_CONNECT_TIMEOUT_S = 10
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
URL_EXAMPLES = "sqlite:///path/to/sweep.db or postgresql+psycopg://user:password@host:5432/db"

# execution option read by the SQLite "begin" hook: writers take the write lock up front
_SQLITE_BEGIN = "babysweep_sqlite_begin"

_PASSWORD_IN_NETLOC = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
_PASSWORD_WITHOUT_SCHEME = re.compile(r"""((?:^|[\s'"(])[^\s:/@'"]+:)([^@\s/'"]+)(@)""")
_PASSWORD_IN_QUERY = re.compile(r"(?i)(\b(?:password|passwd|pwd)=)([^&\s]*)")


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by '***'; safe on strings that are not URLs."""
    text = str(url) if isinstance(url, URL) else url
    try:
        text = make_url(text).render_as_string(hide_password=True)
    except Exception:  # not a URL: fall back to the patterns below
        text = str(text)
    text = _PASSWORD_IN_NETLOC.sub(r"\1***\3", text)
    text = _PASSWORD_WITHOUT_SCHEME.sub(r"\1***\3", text)
    return _PASSWORD_IN_QUERY.sub(r"\1***", text)


def parse_store_url(url: str | URL) -> URL:
    """Parse and normalise a storage URL (postgresql -> postgresql+psycopg); StoreError if unusable."""
    if isinstance(url, URL):
        parsed = url
    else:
        try:
            parsed = make_url(url)
        except Exception:
            raise StoreError(
                f"storage {mask_url(str(url))!r} is not a database URL; use {URL_EXAMPLES}"
            ) from None
    backend = parsed.get_backend_name()
    if backend == "postgres":  # the Heroku spelling, refused by SQLAlchemy 2
        backend = "postgresql"
        parsed = parsed.set(drivername="postgresql")
    if backend not in SUPPORTED_DIALECTS:
        raise StoreError(
            f"storage {mask_url(parsed)!r} uses the unknown database kind {backend!r}; "
            f"babysweep stores results in SQLite or PostgreSQL: use {URL_EXAMPLES}"
        )
    if backend == "postgresql" and "+" not in parsed.drivername:
        # psycopg 3 is the driver babysweep ships; say so, whatever SQLAlchemy's default
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL or an in-memory/URI-form database."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("uri") == "true":
        return None
    return Path(database)


def sqlite_slashes_hint(url: URL | str) -> str:
    """For a relative SQLite path, how to write the absolute one (a common slip); else ""."""
    parsed = make_url(url) if isinstance(url, str) else url
    path = sqlite_file(parsed) if parsed.get_backend_name() == "sqlite" else None
    if path is None or path.is_absolute():
        return ""
    return (
        f"; note sqlite:///{path} is the relative path {path}: for /{path} write four "
        f"slashes, sqlite:////{path}"
    )


def create_store_engine(url: URL) -> Engine:
    """An engine for the store: SQLite with WAL, foreign keys and busy timeout; psycopg 3 otherwise."""
    masked = mask_url(url)
    if url.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if path is not None and not path.parent.is_dir():
            raise StoreError(
                f"the directory {path.parent.resolve()} of the SQLite store {masked!r} does "
                "not exist; create it or point storage at an existing directory"
                + sqlite_slashes_hint(url)
            )
        kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        if path is None:
            kwargs["poolclass"] = StaticPool  # one shared in-memory database
            kwargs["connect_args"]["check_same_thread"] = False
        engine = _create_engine(url, masked, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args = (
        {} if "connect_timeout" in url.query else {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S}
    )
    return _create_engine(url, masked, connect_args=connect_args, pool_pre_ping=True)


def _create_engine(url: URL, masked: str, **kwargs: Any) -> Engine:
    try:
        return sa.create_engine(url, **kwargs)
    except ImportError as exc:
        raise StoreError(
            f"the database driver for {masked!r} is not installed ({exc}); use {URL_EXAMPLES}"
        ) from None
    except sa.exc.ArgumentError as exc:
        raise StoreError(f"storage {masked!r} is not usable: {exc}; use {URL_EXAMPLES}") from None


def reader_engine(engine: Engine) -> Engine:
    """The same pool, for short read-only transactions that never take a write lock."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{_SQLITE_BEGIN: "DEFERRED"})
    # one snapshot per read transaction, so a frame never mixes two moments of a running sweep
    return engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3's own transaction handling is off: the "begin" hook emits BEGIN [IMMEDIATE]
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _sqlite_wal(cursor)
        # with WAL, NORMAL survives application crashes (only a power loss can drop the last commits)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_wal(cursor: Any) -> None:
    """Switch the file to WAL (readers never block the writer; the mode is stored in the file).

    Connections racing to open a new file can both try the switch; SQLite then answers one
    of them "database is locked" at once, without waiting out busy_timeout, because two
    connections each upgrading a read lock would deadlock. That one retries until the
    other's switch is done (a file already in WAL needs no switch).
    """
    if not _retry_while_locked(cursor, "PRAGMA journal_mode = WAL", SQLITE_BUSY_TIMEOUT_S):
        cursor.execute("PRAGMA journal_mode = WAL")  # a last try raises the error itself


def _sqlite_on_begin(connection: sa.Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so a write transaction never fails half-way
    # when it would upgrade from a read lock
    mode = connection.get_execution_options().get(_SQLITE_BEGIN, "IMMEDIATE")
    if mode == "IMMEDIATE" and _poll_write_lock(connection.connection.dbapi_connection):
        return
    connection.exec_driver_sql(f"BEGIN {mode}")  # waits up to busy_timeout


def _poll_write_lock(dbapi_connection: Any) -> bool:
    """BEGIN IMMEDIATE, polled for up to SQLITE_POLL_S (see _retry_while_locked).

    SQLite's busy handler sleeps ever longer (up to 100 ms) between tries, so with many
    writers the lock sits idle while they sleep; polling keeps it busy. False if still
    locked: the caller then falls back to the busy handler.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 0")
    try:
        return _retry_while_locked(cursor, "BEGIN IMMEDIATE", SQLITE_POLL_S)
    finally:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()


def _retry_while_locked(cursor: Any, sql: str, seconds: float) -> bool:
    """Run `sql`, retried with short jittered sleeps while another connection holds the lock.

    True once it ran; False if still locked after `seconds`, or on any other error (the
    caller's fallback statement then raises it).
    """
    deadline = time.monotonic() + seconds
    pause = 0.0005
    while True:
        try:
            cursor.execute(sql)
            return True
        except sqlite3.OperationalError as exc:
            if _sqlite_collision(exc) is None or time.monotonic() > deadline:
                return False
        time.sleep(random.uniform(0, pause))
        pause = min(pause * 2, 0.005)


def _detail(exc: BaseException, url: URL | None) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    detail = lines[0] if lines else type(original).__name__
    if url is not None and url.password:
        detail = detail.replace(str(url.password), "***")
    return mask_url(detail)


_LOGIN = ("password authentication failed", "no password supplied", "authentication failed")
_UNREACHABLE = (
    "connection refused",
    "could not connect",
    "connection failed",
    "timeout expired",
    "could not translate host name",
    "name or service not known",
    "no route to host",
    "network is unreachable",
    "server closed the connection",
)


def describe_driver_error(exc: BaseException, url: URL | None) -> str:
    """One line saying what failed at which (masked) URL and what to do."""
    masked = mask_url(url) if url is not None else "the store"
    detail = _detail(exc, url)
    low = detail.lower()
    if any(s in low for s in _LOGIN) or ("role" in low and "does not exist" in low):
        return (
            f"cannot log in to the database at {masked}: {detail}; "
            "check the user name and password in the storage URL"
        )
    if "database" in low and "does not exist" in low:
        return (
            f"the database named in {masked} does not exist: {detail}; "
            "create it (e.g. `createdb NAME`) or fix the database name in the URL"
        )
    if any(s in low for s in _UNREACHABLE):
        return (
            f"cannot reach the database at {masked}: {detail}; "
            "is PostgreSQL running? check the host and port in the storage URL"
        )
    if "unable to open database file" in low:
        return (
            f"cannot open the SQLite store {masked}: {detail}; check the path and its permissions"
        )
    if "file is not a database" in low:
        return (
            f"{masked} is not a SQLite database: {detail}; "
            "point storage at a store babysweep created, or at a new file"
        )
    if "foreign key" in low:
        return (
            f"the store at {masked} refused the write: {detail}; it names a sweep, stage or "
            "trial id that does not exist in this store"
        )
    if classify(exc) is Transient.COLLISION:
        return (
            f"the database at {masked} stayed locked: {detail}; "
            "another process holds a long write transaction"
        )
    return f"database error at {masked}: {detail}"


class Transient(Enum):
    """An error worth retrying, and why."""

    LOST = "lost"  # the connection is gone (server restart, network, terminated backend)
    COLLISION = "collision"  # writers collided; the transaction was rolled back


# SQLSTATE classes and codes (PostgreSQL appendix A): 08 connection exception; 57P01
# admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now; 40001
# serialization_failure, 40P01 deadlock_detected.
_LOST_SQLSTATE_CLASSES = ("08",)
_LOST_SQLSTATES = {"57P01", "57P02", "57P03"}
_COLLISION_SQLSTATES = {"40001", "40P01"}
# SQLite primary result codes (extended codes keep them in the low byte).
_SQLITE_COLLISIONS = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
# SQLAlchemy's error code for "Can't reconnect until invalid transaction is rolled back":
# raised only on a connection that SQLAlchemy invalidated, i.e. that was lost.
_SA_INVALID_TRANSACTION = "8s2b"


def _sqlite_collision(exc: BaseException) -> Transient | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _SQLITE_COLLISIONS:
        return Transient.COLLISION
    return None


def _classify_one(exc: BaseException) -> Transient | None:
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return Transient.LOST
    if isinstance(exc, sa.exc.PendingRollbackError) and exc.code == _SA_INVALID_TRANSACTION:
        return Transient.LOST
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:
            # psycopg raises OperationalError without a server SQLSTATE when the connection
            # itself failed (refused, timed out, closed under the driver).
            return Transient.LOST if isinstance(exc, psycopg.OperationalError) else None
        if state.startswith(_LOST_SQLSTATE_CLASSES) or state in _LOST_SQLSTATES:
            return Transient.LOST
        if state in _COLLISION_SQLSTATES:
            return Transient.COLLISION
        return None
    return _sqlite_collision(exc)


def classify(exc: BaseException) -> Transient | None:
    """LOST, COLLISION or None (not transient), from codes along the exception chain.

    The chain is walked because SQLAlchemy wraps driver errors (`.orig`) and Optuna and the
    store wrap SQLAlchemy's (`__cause__`).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = _classify_one(current)
        if kind is None and isinstance(current, sa.exc.DBAPIError) and current.orig is not None:
            kind = _classify_one(current.orig)
        if kind is not None:
            return kind
        current = current.__cause__ or current.__context__
    return None


def is_retryable(exc: BaseException) -> bool:
    """A transient conflict between writers: SQLite busy/locked, a PostgreSQL deadlock."""
    return classify(exc) is Transient.COLLISION


def is_disconnect(exc: BaseException) -> bool:
    """The connection was lost (server restarted, network blip, backend terminated)."""
    return classify(exc) is Transient.LOST


# How long a running sweep waits for a lost database before it gives up (seconds).
RECONNECT_BUDGET_S = float(os.environ.get("SWEEP_STORE_RECONNECT_S", "120"))
# Writer collisions: tries in all (SQLite already waited busy_timeout inside each).
COLLISION_ATTEMPTS = 8


def retry_transient(call: Callable[[], T], *, budget_s: float | None = None) -> T:
    """Run `call`, the one retry loop of the store and the searcher.

    A lost connection is retried with backoff up to `budget_s` (RECONNECT_BUDGET_S); a writer
    collision up to COLLISION_ATTEMPTS times with a short jittered pause. Anything else is
    raised at once. Only for idempotent calls (every store write is an upsert, every Optuna
    call made through it is safe to replay), so a write whose commit was lost in flight is
    safely replayed.
    """
    budget = RECONNECT_BUDGET_S if budget_s is None else budget_s
    deadline = time.monotonic() + budget
    delay = 0.2
    collisions = 0
    while True:
        try:
            return call()
        except Exception as exc:
            kind = classify(exc)
            if kind is Transient.LOST and time.monotonic() + delay <= deadline:
                logger.warning("database connection lost (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(5.0, delay * 2)
            elif kind is Transient.COLLISION and collisions < COLLISION_ATTEMPTS - 1:
                collisions += 1
                time.sleep(min(2.0, 0.05 * 2 ** (collisions - 1)) * (0.5 + random.random()))
            else:
                raise


# The name the searcher and runner use for the same loop.
retry_while_disconnected = retry_transient


@contextmanager
def translate_driver_errors(url: URL | None) -> Iterator[None]:
    """Turn driver errors into StoreError naming the masked URL; everything else passes through."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        raise StoreError(describe_driver_error(exc, url)) from exc
