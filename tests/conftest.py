"""Fixtures shared by every test package: the data root and the PostgreSQL under test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainers.config import resolve_data_root

POSTGRES_URL = os.environ.get(
    "SWEEP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared data (babylm-mini, blimp, glue), found as the product finds it."""
    return resolve_data_root(None)


def _postgres_reachable(url: str) -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any driver error means "not reachable" here
        return str(exc).splitlines()[0]
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL URL; under CI=true an unreachable server fails the test, never skips it."""
    problem = _postgres_reachable(POSTGRES_URL)
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL at SWEEP_TEST_POSTGRES_URL is unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable (set SWEEP_TEST_POSTGRES_URL): {problem}")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty schema on the test server, dropped afterwards (tests never share tables)."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_server)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Parametrises a test over both backends, as Optuna runs its storage suite."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")
