"""Bad input gives one clear StoreError each, and no password is ever shown."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
import sqlalchemy as sa

from sweep.store import Store, StoreError, mask_url, read_trials, render_status, upgrade
from sweep.store.connection import Transient, classify, is_disconnect, is_retryable

SECRET = "s3cret"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            f"postgresql+psycopg://nobody:{SECRET}@db.example:5432/sweeps",
            "postgresql+psycopg://nobody:***@db.example:5432/sweeps",
        ),
        (
            f"postgresql://u:{SECRET}@h/db?sslmode=require",
            "postgresql://u:***@h/db?sslmode=require",
        ),
        (f"postgresql://u@h/db?password={SECRET}", "postgresql://u@h/db?password=***"),
        ("sqlite:///runs/sweep.db", "sqlite:///runs/sweep.db"),
        (f"not a url but has u:{SECRET}@host", "not a url but has u:***@host"),
        (f"weird://u:{SECRET}@h:notaport/db", "weird://u:***@h:notaport/db"),
        (f"host=db user=u password={SECRET}", "host=db user=u password=***"),
    ],
)
def test_mask_url_hides_passwords(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def _refused(url: str, *patterns: str) -> str:
    with pytest.raises(StoreError) as err:
        Store(url)
    message = str(err.value)
    assert SECRET not in message and SECRET not in repr(err.value)
    for pattern in patterns:
        assert pattern in message, message
    return message


def test_unreachable_database(postgres_server: str) -> None:
    url = f"postgresql+psycopg://nobody:{SECRET}@127.0.0.1:1/test"  # nothing listens on port 1
    message = _refused(url, "cannot reach", "is PostgreSQL running", "nobody:***@127.0.0.1:1")
    assert "check the host and port" in message


def test_wrong_password_or_user(postgres_server: str) -> None:
    url = f"postgresql+psycopg://nobody_{SECRET[:2]}:{SECRET}@127.0.0.1:5432/test"
    _refused(url, "cannot log in", "check the user name and password", ":***@")


def test_missing_database(postgres_server: str) -> None:
    base = postgres_server.rsplit("/", 1)[0]
    _refused(f"{base}/no_such_db_babysweep", "does not exist", "createdb")


def test_plain_postgresql_urls_use_psycopg3(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with Store(plain) as store:
        assert store.url.startswith("postgresql+psycopg://")


@pytest.mark.parametrize(
    ("url", "pattern"),
    [
        (f"mysql://u:{SECRET}@h/db", "unknown database kind 'mysql'"),
        (f"oracle+oracledb://u:{SECRET}@h/db", "unknown database kind 'oracle'"),
        (f"nosuchdb://u:{SECRET}@h/db", "unknown database kind 'nosuchdb'"),
        ("results.db", "not a database URL"),
        (f"u:{SECRET}@host/db", "not a database URL"),
    ],
)
def test_unknown_dialect_or_not_a_url(url: str, pattern: str) -> None:
    message = _refused(url, pattern)
    assert "sqlite:///" in message  # says what would work


def test_sqlite_directory_that_does_not_exist(tmp_path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    message = _refused(f"sqlite:///{missing / 'store.db'}", str(missing), "does not exist")
    assert "create it" in message
    assert not (tmp_path / "no").exists()


def test_a_file_that_is_not_a_store(tmp_path) -> None:
    junk = tmp_path / "notes.db"
    junk.write_text("these are my notes, not a database\n" * 100)
    _refused(f"sqlite:///{junk}", "is not a SQLite database")


def test_readers_on_a_missing_sqlite_file_create_nothing(tmp_path) -> None:
    path = tmp_path / "typo.db"
    for read in (
        lambda: read_trials(f"sqlite:///{path}"),
        lambda: render_status(f"sqlite:///{path}"),
    ):
        with pytest.raises(StoreError, match="does not exist"):
            read()
    assert not path.exists()


def test_upgrade_command_errors_are_store_errors(tmp_path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        upgrade(f"sqlite:///{tmp_path / 'nope' / 'x.db'}")


def test_store_repr_and_masked_url_hide_the_password(postgres_url: str) -> None:
    # trust auth accepts any password for an existing user: the secret must still never show
    url = postgres_url.replace("postgres@", f"postgres:{SECRET}@")
    with Store(url) as store:
        assert SECRET not in repr(store) and SECRET not in store.masked_url
        assert "***" in store.masked_url
        assert SECRET in store.url  # the real URL, for Optuna on the same database


def _wrapped(orig: Exception) -> Exception:
    base = sqlite3.Error if isinstance(orig, sqlite3.Error) else psycopg.Error
    return sa.exc.DBAPIError.instance("INSERT", {}, orig, base)


def _real_sqlite_errors(tmp_path) -> dict[str, sqlite3.Error]:
    """Errors raised by SQLite itself, with their result codes: a held write lock, a missing
    table, a foreign key."""
    path = tmp_path / "codes.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA foreign_keys = ON")
    holder.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    holder.execute("CREATE TABLE child (parent_id INTEGER REFERENCES parent (id))")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    other.execute("PRAGMA foreign_keys = ON")
    errors = {}
    for name, statement in [
        ("missing table", "SELECT * FROM trial"),
        ("foreign key", "INSERT INTO child VALUES (42)"),
    ]:
        with pytest.raises(sqlite3.Error) as caught:
            other.execute(statement)
        errors[name] = caught.value
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as caught:
        other.execute("BEGIN IMMEDIATE")
    errors["busy"] = caught.value
    holder.close()
    other.close()
    return errors


def test_only_writer_collisions_are_retried(tmp_path) -> None:
    sqlite_errors = _real_sqlite_errors(tmp_path)
    assert is_retryable(_wrapped(sqlite_errors["busy"]))
    assert is_retryable(_wrapped(psycopg.errors.DeadlockDetected("deadlock detected")))
    assert is_retryable(_wrapped(psycopg.errors.SerializationFailure("could not serialize")))
    assert not is_retryable(_wrapped(sqlite_errors["foreign key"]))
    assert not is_retryable(_wrapped(sqlite_errors["missing table"]))
    # codes, not text: a message that only looks like a lock is not one
    assert not is_retryable(_wrapped(sqlite3.OperationalError("database is locked")))


def test_lost_connections_are_recognised_by_code_through_wrappers() -> None:
    import optuna

    with pytest.raises(psycopg.OperationalError) as refused:  # nothing listens on port 1
        psycopg.connect("host=127.0.0.1 port=1 user=x dbname=x connect_timeout=3")
    shutdown = psycopg.errors.AdminShutdown("terminating connection")
    for lost in (refused.value, shutdown, psycopg.errors.ConnectionFailure("x")):
        assert classify(_wrapped(lost)) is Transient.LOST
        # as Optuna's storage raises it
        try:
            try:
                raise _wrapped(lost)
            except sa.exc.DBAPIError as exc:
                raise optuna.exceptions.StorageInternalError("an error") from exc
        except optuna.exceptions.StorageInternalError as wrapped:
            assert is_disconnect(wrapped)
    assert classify(_wrapped(psycopg.errors.UniqueViolation("duplicate"))) is None
    assert not is_disconnect(RuntimeError("connection refused"))  # text alone is nothing


def test_one_retry_loop_retries_collisions_a_bounded_number_of_times(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweep.store import connection

    pauses: list[float] = []
    monkeypatch.setattr(connection.time, "sleep", pauses.append)
    errors = _real_sqlite_errors(tmp_path)
    calls: list[int] = []

    def busy_twice() -> str:
        calls.append(1)
        if len(calls) <= 2:
            raise _wrapped(errors["busy"])
        return "done"

    assert connection.retry_transient(busy_twice) == "done" and len(calls) == 3

    def always(error: Exception):
        def call() -> None:
            calls.append(1)
            raise error

        return call

    calls.clear()
    with pytest.raises(sa.exc.DBAPIError):
        connection.retry_transient(always(_wrapped(errors["busy"])))
    assert len(calls) == connection.COLLISION_ATTEMPTS
    calls.clear()
    with pytest.raises(sa.exc.DBAPIError):  # not transient: raised at once
        connection.retry_transient(always(_wrapped(errors["foreign key"])))
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(sa.exc.DBAPIError):  # lost: retried until the budget is spent
        connection.retry_transient(
            always(_wrapped(psycopg.errors.AdminShutdown("terminating"))), budget_s=0.0
        )
    assert len(calls) == 1
