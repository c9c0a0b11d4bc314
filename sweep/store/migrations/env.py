"""Alembic environment for the babysweep store (configured in code by sweep.store.migrate).

sweep.store.migrate hands over an open connection (inside a transaction that holds the
migration lock) as config.attributes["connection"]. To write a new revision by hand:
build the Config with sweep.store.migrate.alembic_config(url) and call
alembic.command.revision(cfg, message=..., autogenerate=True).
"""

from __future__ import annotations

from typing import Any

from alembic import context

from sweep.store.connection import create_store_engine, parse_store_url
from sweep.store.migrate import VERSION_TABLE
from sweep.store.models import Base

config = context.config
target_metadata = Base.metadata


def _our_tables(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # Optuna's tables live in the same database: autogenerate must never touch them
    return type_ != "table" or reflected is False or name in target_metadata.tables


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,  # Optuna owns the default `alembic_version`
        include_object=_our_tables,
        # No batch mode: on SQLite it rebuilds a table by DROP + RENAME, and with foreign
        # keys on (as the store runs) dropping `trial` cascades to every metric row. A
        # revision that must rebuild a table on SQLite has to turn foreign keys off first,
        # outside the migration transaction.
        render_as_batch=False,
        compare_type=True,
        **kwargs,
    )


if context.is_offline_mode():
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    else:
        engine = create_store_engine(parse_store_url(config.get_main_option("sqlalchemy.url", "")))
        with engine.begin() as own_connection:
            _configure(connection=own_connection)
            context.run_migrations()
        engine.dispose()
