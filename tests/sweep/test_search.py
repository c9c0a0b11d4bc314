"""The searcher on a real PostgreSQL whose server drops the connection mid-ask.

Optuna's ask spans several transactions (create the trial, then one per param and
attribute). A connection lost between them must not leave a trial nobody runs, nor skip a
planned trial: the stress test in test_runner.py found both, once, in CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from optuna.trial import TrialState

from sweep import optuna_compat
from sweep.config import LogUniform, Uniform
from sweep.search import PlannedTrial, StageSearcher, open_study, reconcile
from sweep.store import Store

# The statements of one ask, in order: the trial row, its params, its seed/role attributes.
STEPS = ["INSERT INTO trials ", "INSERT INTO trial_params", "INSERT INTO trial_system_attributes"]


@pytest.fixture
def drop_once(postgres_url: str) -> Iterator:
    """drop_once(study, statement): the server terminates the study's connection the first
    time that statement is sent, while its transaction is open (a real AdminShutdown)."""
    admin = sa.create_engine(postgres_url)
    dropped: list[str] = []

    def arm(study, statement: str) -> list[str]:
        engine = optuna_compat.storage_engine(study)

        @sa.event.listens_for(engine, "before_cursor_execute")
        def terminate(conn, cursor, sql, parameters, context, executemany) -> None:
            if not dropped and sql.startswith(statement):
                pid = conn.connection.dbapi_connection.info.backend_pid
                with admin.begin() as c:
                    c.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid})
                dropped.append(sql)

        return dropped

    yield arm
    admin.dispose()


@pytest.mark.parametrize("step", STEPS)
def test_planned_trials_survive_a_connection_lost_mid_ask(
    postgres_url: str, drop_once, step: str
) -> None:
    plans = [
        PlannedTrial({"lr": lr}, seed=10 + i, role="student")
        for i, lr in enumerate([1e-3, 2e-3, 3e-3])
    ]
    study = open_study(postgres_url, "s/baselines", seed=0, trials=3)
    dropped = drop_once(study, step)
    searcher = StageSearcher(study, total=3, seed=0, role="student", plans=plans)

    configs = [searcher.suggest(f"tune-{i}") for i in range(4)]

    assert dropped, f"the server never dropped the connection at {step!r}"
    assert configs[3] == "FINISHED"
    assert [c["params"]["lr"] for c in configs[:3]] == [1e-3, 2e-3, 3e-3]
    assert [c["seed"] for c in configs[:3]] == [10, 11, 12]
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == [0, 1, 2], "an orphan trial was left behind"
    assert all(t.state == TrialState.RUNNING for t in trials)
    assert [t.params["lr"] for t in trials] == [1e-3, 2e-3, 3e-3]


@pytest.mark.parametrize("step", STEPS)
def test_sampled_trials_survive_a_connection_lost_mid_ask(
    postgres_url: str, drop_once, step: str
) -> None:
    space = {
        "lr": LogUniform(dist="loguniform", low=1e-4, high=1e-2),
        "alpha": Uniform(dist="uniform", low=0.0, high=1.0),
    }
    study = open_study(postgres_url, "s/students", seed=5, trials=2)
    dropped = drop_once(study, step)
    searcher = StageSearcher(study, total=2, seed=5, role="student", space=space)

    configs = [searcher.suggest(f"tune-{i}") for i in range(2)]

    assert dropped, f"the server never dropped the connection at {step!r}"
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == [0, 1], "an orphan trial was left behind"
    assert [set(t.params) for t in trials] == [{"lr", "alpha"}] * 2
    assert [c["params"] for c in configs] == [t.params for t in trials]
    assert [c["seed"] for c in configs] == [5, 6]


def test_a_trial_interrupted_mid_ask_is_completed_on_resume(postgres_url: str) -> None:
    """The driver died after creating the trial, before its params: resume fills it in."""
    store = Store(postgres_url)
    sweep_id = store.upsert_sweep("s", config={}, config_hash="h", code_version="test")
    stage_id = store.upsert_stage(sweep_id, "baselines", optuna_study="s/baselines")
    plans = [PlannedTrial({"lr": 1e-3, "alpha": 0.5}, seed=3, role="student")]
    study = open_study(postgres_url, "s/baselines", seed=0, trials=1)
    optuna_compat.create_running_trial(study, {"babysweep_slot": 0})

    adopted = reconcile(study, store, stage_id)
    searcher = StageSearcher(study, total=1, seed=0, role="student", plans=plans, adopted=adopted)
    config = searcher.suggest("tune-0")

    assert config["number"] == 0
    assert config["params"] == {"lr": 1e-3, "alpha": 0.5}
    assert config["seed"] == 3 and config["role"] == "student"
    assert searcher.suggest("tune-1") == "FINISHED"
    assert len(study.get_trials(deepcopy=False)) == 1
    store.dispose()


def test_user_attrs_survive_a_connection_lost_while_the_trial_is_read(
    postgres_url: str, drop_once
) -> None:
    """The driver labels a finished trial for optuna-dashboard: building the Trial reads it
    from the storage, and a connection lost there once failed a finished trial in CI."""
    from sweep.runner import set_user_attrs

    study = open_study(postgres_url, "s/teachers", seed=0, trials=1)
    trial_id = optuna_compat.create_running_trial(study, {})
    dropped = drop_once(study, "SELECT trials.")

    set_user_attrs(study, trial_id, {"role": "teacher", "store_trial_id": 7, "test_loss": None})

    assert dropped, "the server never dropped the connection while the trial was read"
    (trial,) = study.get_trials(deepcopy=False)
    assert trial.user_attrs == {"role": "teacher", "store_trial_id": 7}
