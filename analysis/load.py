"""Store -> pandas: the DataFrames every part of the analysis reads, for one sweep."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from sweep.errors import StoreError

if TYPE_CHECKING:
    from sweep.store import Store

__all__ = [
    "GROUPS",
    "HYPERPARAMETERS",
    "METRICS",
    "STAGES",
    "Frames",
    "finished",
    "load_frames",
]

STAGES = ("teachers", "students", "baselines", "repeats")
HYPERPARAMETERS = ("alpha", "temperature", "lr", "batch_size")
"""The swept hyperparameters the sensitivity section plots (columns param_<name>)."""
METRICS = {"blimp_overall": True, "dev_loss": False}
"""Headline metric -> whether higher is better."""
GROUPS = (
    ("teachers", "teachers", None),
    ("students", "students", None),
    ("baselines", "matched baselines", None),
    ("repeats:teacher", "teacher repeats", "teacher"),
    ("repeats:student", "student repeats", "student"),
)
"""Headline groups: key, label, role filter (repeats hold seeds of both roles)."""


@dataclass(frozen=True)
class Frames:
    """One sweep as read from the store, one DataFrame per read API call."""

    sweep: str
    """The sweep's name (the key in the store and the prefix of its Optuna studies)."""
    sweeps: pd.DataFrame
    """read_sweeps: one row per sweep in the store (sweep, status, config_hash, ...)."""
    trials: pd.DataFrame
    """read_trials: one row per trial, params as param_<name>, last metric values, blimp_overall."""
    metrics: pd.DataFrame
    """read_metrics: long learning curves (trial_id, stage, iteration, name, value)."""
    evaluations: pd.DataFrame
    """read_evaluations: BLiMP per paradigm and group, GLUE per task (suite, task, group, value, n)."""
    ensemble: pd.DataFrame
    """read_ensemble: the teacher trials the students distilled from (trial_id, rank, value)."""
    storage_url: str | None = None
    """Where the Optuna studies `<sweep>/<stage>` live (the same database); None: not available."""

    @property
    def info(self) -> dict[str, Any]:
        """This sweep's row of read_sweeps as a dict (config_hash, code_version, status, ...)."""
        rows = self.sweeps[self.sweeps["sweep"] == self.sweep]
        return {} if rows.empty else rows.iloc[0].to_dict()

    def stage(self, stage: str, *, role: str | None = None) -> pd.DataFrame:
        """Trials of one stage (optionally one role), all statuses."""
        t = self.trials
        rows = t[t["stage"] == stage]
        if role is not None:
            rows = rows[rows["role"] == role]
        return rows

    def group(self, key: str) -> pd.DataFrame:
        """Trials of a headline group key from GROUPS (e.g. "repeats:student")."""
        stage, _, role = key.partition(":")
        return self.stage(stage, role=role or None)


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that ran to the end (COMPLETE); pruned, failed and running ones are left out."""
    return trials[trials["status"] == "COMPLETE"]


def _storage_url(store: Store | str) -> str | None:
    if isinstance(store, str):
        return store
    url = getattr(store, "url", None)
    return None if url is None else str(url)


def _masked(url: str | None) -> str:
    if url is None:
        return "the store"
    from sweep.store import mask_url

    return mask_url(url)


def load_frames(store: Store | str, sweep: str | None = None) -> Frames:
    """Read one sweep from the store (a Store or a database URL) into DataFrames.

    With `sweep=None` a store holding one sweep gives that sweep, and one holding several
    gives the most recently created. Raises StoreError naming the sweeps there when the
    store is empty or has no sweep called `sweep`.
    """
    from sweep.store import (
        read_ensemble,
        read_evaluations,
        read_metrics,
        read_sweeps,
        read_trials,
    )

    sweeps = read_sweeps(store)
    url = _storage_url(store)
    if sweeps.empty:
        raise StoreError(
            f"{_masked(url)} holds no sweep yet; run `sweep run sweep.yaml` first, "
            "or point --storage at the database the sweep wrote"
        )
    names = [str(n) for n in sweeps["sweep"]]
    if sweep is None:
        sweep = str(sweeps.sort_values("created_at", kind="stable").iloc[-1]["sweep"])
    elif sweep not in names:
        raise StoreError(
            f"{_masked(url)} has no sweep named {sweep!r}; it holds: {', '.join(sorted(names))}. "
            "Pass one of these with --sweep"
        )
    return Frames(
        sweep=sweep,
        sweeps=sweeps,
        trials=read_trials(store, sweep=sweep),
        metrics=read_metrics(store, sweep=sweep),
        evaluations=read_evaluations(store, sweep=sweep),
        ensemble=read_ensemble(store, sweep=sweep),
        storage_url=url,
    )
