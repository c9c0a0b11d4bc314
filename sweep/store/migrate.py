"""Alembic, configured in code (no alembic.ini): upgrade a store, read its revision, refuse newer ones.

Our version table is `babysweep_alembic_version`, because Optuna's RDBStorage keeps its
own revision in `alembic_version` in the same database.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Engine

from sweep.errors import StoreError
from sweep.store.connection import (
    create_store_engine,
    mask_url,
    parse_store_url,
    reader_engine,
    translate_driver_errors,
)

__all__ = [
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "upgrade",
]

VERSION_TABLE = "babysweep_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# PostgreSQL advisory lock that serialises concurrent first-use upgrades ("bsw1")
_UPGRADE_LOCK_KEY = 0x62737731


def alembic_config(url: str | None = None, connection: sa.Connection | None = None) -> Config:
    """An Alembic Config for our migrations; pass `connection` to migrate inside its transaction."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal % must be doubled
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The schema revision this code writes."""
    head = _script().get_current_head()
    assert head is not None, "sweep/store/migrations has no revisions"
    return head


def _known_revisions() -> set[str]:
    return {script.revision for script in _script().walk_revisions()}


def _read_revision(connection: sa.Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _newer_schema(revision: str, url: URL) -> StoreError:
    return StoreError(
        f"the store at {mask_url(url)} was made by a newer babysweep (revision {revision}; "
        f"this babysweep knows up to {head_revision()}); upgrade babysweep"
    )


def _migrate(engine: Engine, target: str) -> None:
    with engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE holds off other writers
        if engine.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_UPGRADE_LOCK_KEY)))
        # Alembic re-reads the revision inside this transaction, so a store another
        # process upgraded meanwhile is left as it is
        command.upgrade(alembic_config(connection=connection), target)


def ensure_schema(
    engine: Engine, url: URL, *, upgrade: bool, target: str = "head"
) -> tuple[str | None, str]:
    """Bring the store to `target` (if `upgrade`) and return (revision before, revision now)."""
    with translate_driver_errors(url):
        with reader_engine(engine).connect() as connection:
            current = _read_revision(connection)
        wanted = head_revision() if target == "head" else target
        if current is not None and current not in _known_revisions():
            raise _newer_schema(current, url)
        if current == wanted:
            return current, wanted
        if not upgrade:
            if current is None:
                raise StoreError(
                    f"there is no babysweep store at {mask_url(url)} (no babysweep tables); "
                    f"run a sweep against it, or `sweep db upgrade {mask_url(url)}`"
                )
            raise StoreError(
                f"the store at {mask_url(url)} has schema revision {current}, this babysweep "
                f"needs {wanted}; run `sweep db upgrade {mask_url(url)}`"
            )
        _migrate(engine, wanted)
        with reader_engine(engine).connect() as connection:
            now = _read_revision(connection)
    assert now is not None
    return current, now


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str]:
    """`sweep db upgrade URL`: migrate the store to `revision`; returns (from, to) revisions."""
    parsed = parse_store_url(url)
    engine = create_store_engine(parsed)
    try:
        return ensure_schema(engine, parsed, upgrade=True, target=revision)
    finally:
        engine.dispose()


def current_revision(database: Engine | str) -> str | None:
    """The schema revision of a database (an open engine, e.g. `store.engine`, or a URL),
    or None for a database without babysweep tables."""
    if isinstance(database, Engine):
        engine, parsed, own = database, database.url, False
    else:
        parsed = parse_store_url(database)
        engine, own = create_store_engine(parsed), True
    try:
        with translate_driver_errors(parsed), reader_engine(engine).connect() as connection:
            return _read_revision(connection)
    finally:
        if own:
            engine.dispose()
