"""Every use of Optuna's non-public API, behind one door.

The searcher needs a few things Optuna's public API does not offer: a trial created in ONE
transaction with its system attributes (so a retry after a lost connection finds it), a
handle on an existing trial to suggest into (to re-run an interrupted trial under its own
number), and writes to a trial by number from outside an objective function. Each helper
below names the private attribute it touches and the public behaviour it relies on;
tests/sweep/test_optuna_compat.py exercises every one against the installed Optuna, so an
upgrade that changes them fails that one test rather than resume in production.

Private names used (Optuna 4.x-5.x): `Study._storage`, `Study._study_id`,
`FrozenTrial._trial_id`, `Trial(study, trial_id)`, and through `_storage` the BaseStorage
methods `create_new_trial`, `set_trial_system_attr`, `get_trial_id_from_study_id_trial_number`,
`set_trial_intermediate_value`; `_CachedStorage._backend` (tests only, via `storage_engine`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "create_running_trial",
    "report_intermediate",
    "set_system_attr",
    "storage_engine",
    "trial_handle",
    "trial_id",
]


def _storage(study: optuna.Study) -> BaseStorage:
    # Study._storage: the BaseStorage the study was created on (for an RDBStorage, Optuna
    # wraps it in its _CachedStorage); every public Study method reads and writes through it.
    storage: BaseStorage = study._storage
    return storage


def _study_id(study: optuna.Study) -> int:
    # Study._study_id: the storage's id for the study, the key of every BaseStorage call
    # (public equivalent: storage.get_study_id_from_name(study.study_name), one query more).
    study_id: int = study._study_id
    return study_id


def trial_id(trial: FrozenTrial | optuna.Trial) -> int:
    """The storage's id of a trial (not its number): the key for `trial_handle`."""
    # FrozenTrial._trial_id / Trial._trial_id: set by the storage on creation and stable for
    # the trial's life; FrozenTrial exposes no public accessor for it.
    value: int = trial._trial_id
    return value


def create_running_trial(study: optuna.Study, system_attrs: Mapping[str, Any]) -> int:
    """A new RUNNING trial carrying `system_attrs`, created in one storage transaction.

    `study.ask` creates the trial and then writes each attribute in its own transaction; a
    connection lost in between leaves a trial nobody can recognise. Here the attributes are
    written with the trial row (BaseStorage.create_new_trial with a template trial, the call
    `study.add_trial` makes), so a retry can find its own trial by an attribute.
    """
    template = optuna.trial.create_trial(state=TrialState.RUNNING, system_attrs=dict(system_attrs))
    return _storage(study).create_new_trial(_study_id(study), template)


def trial_handle(study: optuna.Study, trial_id: int) -> optuna.Trial:
    """A `Trial` on an existing RUNNING trial, to suggest into as `study.ask` would.

    `Trial(study, trial_id)` is the constructor `study.ask` calls after creating the trial;
    suggestions already recorded on the trial are returned unchanged (Optuna's documented
    "suggest the same name twice returns the same value"), which keeps a re-fill idempotent.
    """
    return optuna.Trial(study, trial_id)


def set_system_attr(study: optuna.Study, trial_id: int, key: str, value: Any) -> None:
    """Record a system attribute on a trial (Trial.set_system_attr is deprecated in Optuna 3)."""
    # BaseStorage.set_trial_system_attr: the write FrozenTrial.system_attrs reads back.
    _storage(study).set_trial_system_attr(trial_id, key, value)


def report_intermediate(
    study: optuna.Study, number: int, points: Sequence[tuple[int, float]]
) -> None:
    """`trial.report(value, step)` for each (step, value), for a trial known by its number.

    The recorder learns an epoch's objective in the driver, where no `Trial` object exists;
    this writes what `Trial.report` writes (the values FrozenTrial.intermediate_values shows).
    """
    storage = _storage(study)
    tid = storage.get_trial_id_from_study_id_trial_number(_study_id(study), number)
    for step, value in points:
        storage.set_trial_intermediate_value(tid, step, value)


def storage_engine(study: optuna.Study) -> sa.Engine:
    """The SQLAlchemy engine of a study on an RDBStorage (tests arm connection faults on it)."""
    storage: Any = _storage(study)
    # _CachedStorage._backend: the RDBStorage under Optuna's cache; RDBStorage.engine is public.
    rdb = getattr(storage, "_backend", storage)
    if not isinstance(rdb, optuna.storages.RDBStorage):
        raise TypeError(f"study {study.study_name!r} is not on an RDBStorage")
    return rdb.engine
