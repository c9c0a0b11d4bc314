"""The contract of sweep/optuna_compat.py against the installed Optuna.

Each test exercises one private-API helper on a real study in an RDBStorage (the storage the
product uses, on both backends) and checks the public behaviour the searcher relies on. An
Optuna upgrade that renames or changes one of them fails here, by name.
"""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy as sa
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from sweep import optuna_compat
from sweep.search import open_study


@pytest.fixture
def study(store_url: str) -> optuna.Study:
    return open_study(store_url, "contract/teachers", seed=0, trials=4)


def test_trial_id_is_the_storage_key_of_a_trial(study: optuna.Study) -> None:
    asked = study.ask()
    study.tell(asked, 1.0)
    frozen = study.get_trials(deepcopy=False)[0]
    assert optuna_compat.trial_id(frozen) == optuna_compat.trial_id(asked)
    handle = optuna_compat.trial_handle(study, optuna_compat.trial_id(frozen))
    assert handle.number == frozen.number == 0


def test_create_running_trial_writes_the_trial_and_its_attrs_together(
    study: optuna.Study,
) -> None:
    tid = optuna_compat.create_running_trial(study, {"ticket": "abc", "slot": 2})
    (frozen,) = study.get_trials(deepcopy=False)
    assert optuna_compat.trial_id(frozen) == tid
    assert frozen.state == TrialState.RUNNING
    assert frozen.system_attrs == {"ticket": "abc", "slot": 2}
    assert frozen.params == {} and frozen.number == 0


def test_trial_handle_suggests_into_an_existing_trial_idempotently(study: optuna.Study) -> None:
    tid = optuna_compat.create_running_trial(study, {})
    first = optuna_compat.trial_handle(study, tid).suggest_float("lr", 1e-4, 1e-2, log=True)
    # A fresh handle (as after a lost connection) returns the recorded value, not a new one.
    again = optuna_compat.trial_handle(study, tid).suggest_float("lr", 1e-4, 1e-2, log=True)
    assert again == first
    (frozen,) = study.get_trials(deepcopy=False)
    assert frozen.params == {"lr": first}
    assert frozen.distributions == {"lr": FloatDistribution(1e-4, 1e-2, log=True)}
    study.tell(frozen.number, 0.5)
    assert study.best_trial.params == {"lr": first}


def test_set_system_attr_is_visible_on_the_frozen_trial(study: optuna.Study) -> None:
    tid = optuna_compat.create_running_trial(study, {"ticket": "t"})
    optuna_compat.set_system_attr(study, tid, "meta", {"seed": 3, "role": "student"})
    (frozen,) = study.get_trials(deepcopy=False)
    assert frozen.system_attrs == {"ticket": "t", "meta": {"seed": 3, "role": "student"}}


def test_report_intermediate_by_number_is_what_trial_report_writes(study: optuna.Study) -> None:
    optuna_compat.create_running_trial(study, {})
    asked = study.ask()  # number 1
    optuna_compat.report_intermediate(study, 1, [(0, 3.5), (1, 9.0)])
    optuna_compat.report_intermediate(study, 1, [(1, 2.5)])  # a step again: the new value
    asked.report(1.5, 2)  # the public call, for comparison
    frozen = study.get_trials(deepcopy=False)[1]
    assert frozen.intermediate_values == {0: 3.5, 1: 2.5, 2: 1.5}
    assert study.get_trials(deepcopy=False)[0].intermediate_values == {}


def test_storage_engine_is_the_engine_on_the_study_database(study: optuna.Study) -> None:
    engine = optuna_compat.storage_engine(study)
    assert isinstance(engine, sa.Engine)
    with engine.connect() as conn:
        names = conn.execute(sa.text("select study_name from studies")).scalars().all()
    assert names == ["contract/teachers"]


def test_storage_engine_refuses_a_study_not_on_a_database() -> None:
    with pytest.raises(TypeError, match="not on an RDBStorage"):
        optuna_compat.storage_engine(optuna.create_study(study_name="memory"))


def test_open_study_names_its_objective(sqlite_url: str) -> None:
    """Every study production opens says what its objective is (dashboard, `sweep status`)."""
    open_study(sqlite_url, "named/teachers", seed=0, trials=2)
    loaded = optuna.load_study(study_name="named/teachers", storage=sqlite_url)
    assert loaded.metric_names == ["dev_loss"]
