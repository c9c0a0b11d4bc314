"""Store fixtures: a Store on each backend (tests/conftest.py provides the URLs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from store_scenarios import DemoIds, write_demo_sweep

from sweep.store import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated, empty store on SQLite and on PostgreSQL."""
    opened = Store(store_url)
    yield opened
    opened.dispose()


@pytest.fixture
def demo(store: Store) -> DemoIds:
    """The demo sweep written into `store`."""
    return write_demo_sweep(store)
