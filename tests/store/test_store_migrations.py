"""Alembic owns the schema: empty -> head, first revision -> head, newer refused; the
models match the migrations; Optuna's tables (and its alembic_version) live alongside."""

from __future__ import annotations

import logging

import optuna
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from sweep.store import Store, StoreError, TrialStatus, current_revision, head_revision, upgrade
from sweep.store.migrate import VERSION_TABLE
from sweep.store.models import Base

OUR_TABLES = set(Base.metadata.tables)


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _execute(url: str, sql: str, **params: object) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def test_an_empty_database_is_upgraded_to_head_on_first_use(store_url: str) -> None:
    assert current_revision(store_url) is None
    with Store(store_url) as store:
        assert (store.revision_before, store.revision) == (None, head_revision())
    assert current_revision(store_url) == head_revision()
    assert _tables(store_url) == OUR_TABLES | {VERSION_TABLE}
    assert upgrade(store_url) == (head_revision(), head_revision())  # nothing to do


def test_a_store_at_the_first_revision_is_upgraded_keeping_its_rows(store_url: str) -> None:
    assert upgrade(store_url, "0001") == (None, "0001")
    assert "artifact" not in _tables(store_url)
    # a sweep written by the first release
    _execute(
        store_url,
        "INSERT INTO sweep (id, name, config, config_hash, status, code_version, created_at,"
        " updated_at) VALUES (1, 'old', '{}', 'h', 'COMPLETE', '0.0.1', :t, :t)",
        t="2025-01-01 00:00:00",
    )
    _execute(
        store_url,
        "INSERT INTO stage (id, sweep_id, name, status, direction, created_at, updated_at)"
        " VALUES (1, 1, 'teachers', 'COMPLETE', 'minimize', :t, :t)",
        t="2025-01-01 00:00:00",
    )
    _execute(
        store_url,
        "INSERT INTO trial (stage_id, number, role, status, params, seed, updated_at)"
        " VALUES (1, 0, 'teacher', 'COMPLETE', '{\"lr\": 0.001}', 7, :t)",
        t="2025-01-01 00:00:00",
    )
    with pytest.raises(StoreError, match="sweep db upgrade"):
        Store(store_url, upgrade=False)
    with Store(store_url) as store:
        assert (store.revision_before, store.revision) == ("0001", head_revision())
        sweep = store.get_sweep("old")
        assert sweep is not None and sweep.status == "COMPLETE"
        assert sweep.created_at.tzinfo is not None
        (old_trial,) = store.trials(1)
        assert (old_trial.params, old_trial.seed) == ({"lr": 0.001}, 7)
        trial = store.upsert_trial(1, 1, role="teacher", params={}, seed=2**32 - 1)
        assert store.trials(1)[1].seed == 2**32 - 1  # 0003 widened the column
        store.add_artifact(trial, "/ckpt/0", size_bytes=1, sha256="0" * 64)
        assert len(store.checkpoint_artifacts(trial)) == 1


def test_a_store_from_a_newer_babysweep_is_refused(store_url: str) -> None:
    Store(store_url).dispose()
    _execute(store_url, f"UPDATE {VERSION_TABLE} SET version_num = '0042'")
    for attempt in (lambda: Store(store_url), lambda: upgrade(store_url)):
        with pytest.raises(StoreError, match="made by a newer babysweep") as err:
            attempt()
        assert "0042" in str(err.value) and "upgrade babysweep" in str(err.value)
    assert current_revision(store_url) == "0042"


def test_reading_an_empty_database_never_creates_tables(store_url: str) -> None:
    with pytest.raises(StoreError, match=r"there is no (babysweep )?store"):
        Store(store_url, upgrade=False)
    assert _tables(store_url) == set()


def test_models_match_the_migrations(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


@pytest.mark.parametrize("optuna_first", [False, True], ids=["store-first", "optuna-first"])
def test_optuna_study_and_our_tables_share_one_database(store_url: str, optuna_first: bool) -> None:
    optuna.logging.set_verbosity(logging.WARNING)
    if optuna_first:
        optuna.create_study(storage=store_url, study_name="early")
    store = Store(store_url)
    try:
        sweep = store.upsert_sweep("demo", config={}, config_hash="h", code_version="t")
        stage = store.upsert_stage(sweep, "teachers", optuna_study="demo/teachers")
        # Optuna on the very URL the store hands out, as the runner does
        study = optuna.create_study(storage=store.url, study_name="demo/teachers")
        study.optimize(lambda t: (t.suggest_float("lr", 1e-4, 1e-2, log=True) - 1e-3) ** 2, 3)
        for trial in study.trials:
            tid = store.upsert_trial(
                stage,
                trial.number,
                role="teacher",
                params=trial.params,
                seed=0,
                optuna_trial_number=trial.number,
            )
            store.finish_trial(tid, TrialStatus.COMPLETE, objective=trial.value)
    finally:
        store.dispose()

    tables = _tables(store_url)
    assert OUR_TABLES | {VERSION_TABLE, "alembic_version", "studies", "trials"} <= tables
    # both version tables hold their own revision, and each side still opens cleanly
    assert current_revision(store_url) == head_revision()
    storage = optuna.storages.RDBStorage(store_url)  # runs Optuna's schema check
    assert storage._version_manager.get_current_version() == (
        storage._version_manager.get_head_version()
    )
    loaded = optuna.load_study(study_name="demo/teachers", storage=storage)
    assert len(loaded.trials) == 3
    storage.engine.dispose()
    with Store(store_url, upgrade=False) as again:
        assert len(again.trials(stage)) == 3
