"""Store -> pandas: the DataFrames every part of the analysis reads, for one sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sweep.errors import StoreError

if TYPE_CHECKING:
    from sweep.store import Store

__all__ = [
    "HIGHER",
    "HYPERPARAMETERS",
    "METRICS",
    "SELECTION_METRIC",
    "STAGE_KINDS",
    "Frames",
    "finished",
    "load_frames",
    "with_contract_columns",
]

STAGE_KINDS = ("teachers", "students", "baselines", "repeats", "reference")
"""The kinds a declared stage can have (sweep.store.StageKind)."""
HYPERPARAMETERS = ("alpha", "temperature", "lr", "batch_size")
"""The swept hyperparameters the sensitivity section plots (columns param_<name>)."""
METRICS = {"blimp_overall": True, "test_loss": False}
"""Reported metrics (held out from every selection) -> whether higher is better."""
SELECTION_METRIC = "dev_loss"
"""The split that chooses: Optuna objective, ASHA signal, ensemble and best-config choice."""
HIGHER = {"blimp_overall": True, "test_loss": False, "dev_loss": False}
"""Every metric the report reads -> whether higher is better."""


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
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved sweep.yaml stored with the sweep ({} when the store has none)."""
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    """read_step_metrics: within-epoch curves (trial_id, stage, epoch, step, name, value),
    train_loss_step and dev_loss on the optimizer-step axis; empty for older stores."""

    def __post_init__(self) -> None:
        # every consumer reads the contract columns; an old store gets them derived once, here
        object.__setattr__(
            self, "trials", with_contract_columns(self.trials, self.metrics, self.evaluations)
        )

    @property
    def info(self) -> dict[str, Any]:
        """This sweep's row of read_sweeps as a dict (config_hash, code_version, status, ...)."""
        rows = self.sweeps[self.sweeps["sweep"] == self.sweep]
        return {} if rows.empty else rows.iloc[0].to_dict()

    def stage(
        self, stage: str, *, role: str | None = None, source: str | None = None
    ) -> pd.DataFrame:
        """Trials of one stage (optionally one role, one source stage), all statuses."""
        t = self.trials
        rows = t[t["stage"] == stage]
        if role is not None:
            rows = rows[rows["role"] == role]
        if source is not None:
            rows = rows[rows["source_stage"] == source]
        return rows

    def stages(self, kind: str) -> list[str]:
        """The stages of one kind (teachers, students, ...) in the order they ran."""
        t = self.trials
        return [str(s) for s in t.loc[t["stage_kind"] == kind, "stage"].unique()]

    def stage_settings(self, stage: str) -> dict[str, Any]:
        """What the stored config says of a stage: scheduler type, trials, epochs (None: unsaid)."""
        stages = self.config.get("stages") if isinstance(self.config, dict) else None
        entry: Any = None
        if isinstance(stages, dict):
            entry = stages.get(stage)
        elif isinstance(stages, list):  # declared stages: a list of {name: ..., kind: ...}
            entry = next(
                (e for e in stages if isinstance(e, dict) and e.get("name") == stage), None
            )
        if not isinstance(entry, dict):
            return {"scheduler": None, "trials": None, "epochs": None}
        scheduler = entry.get("scheduler")
        kind = scheduler.get("type") if isinstance(scheduler, dict) else scheduler
        return {
            "scheduler": None if kind is None else str(kind),
            "trials": entry.get("trials"),
            "epochs": entry.get("epochs"),
        }

    def ensemble_size(self, stage: str) -> int:
        """Teachers per student in a stage (the most common value among its trials)."""
        sizes = pd.to_numeric(self.stage(stage)["ensemble_size"], errors="coerce").dropna()
        return int(sizes.mode().iloc[0]) if len(sizes) else 0

    def groups(self) -> list[tuple[str, str]]:
        """Headline groups (key, label): each stage; seed re-runs split by role and source stage.

        Keys: the stage name, or `<stage>:<role>` for repeats/reference, with `:<source>`
        added when that role re-ran more than one source stage (e.g. two students stages).
        """
        out: list[tuple[str, str]] = []
        t = self.trials
        for stage in t["stage"].unique():
            rows = t[t["stage"] == stage]
            kind = str(rows["stage_kind"].iloc[0])
            if kind not in ("repeats", "reference"):
                label = "matched baselines" if kind == "baselines" else str(stage)
                out.append((str(stage), label))
                continue
            for role in rows["role"].dropna().unique():
                of_role = rows[rows["role"] == role]
                sources = [s for s in of_role["source_stage"].dropna().unique()]
                if kind == "reference":  # the teachers' chosen config re-trained on more data
                    src = f" ({sources[0]}' chosen config)" if len(sources) == 1 else ""
                    name = "" if stage == "reference" else f" {stage}"  # no "reference reference"
                    out.append((f"{stage}:{role}", f"data-scale reference{name}{src}"))
                elif len(sources) <= 1:
                    src = f" of {sources[0]}" if sources else ""
                    out.append((f"{stage}:{role}", f"{role} {stage}{src}"))
                else:
                    out += [(f"{stage}:{role}:{s}", f"{role} {stage} of {s}") for s in sources]
        return out

    def group(self, key: str) -> pd.DataFrame:
        """Trials of a headline group key from groups() (e.g. "repeats:student")."""
        stage, _, rest = key.partition(":")
        role, _, source = rest.partition(":")
        return self.stage(stage, role=role or None, source=source or None)


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that ran to the end (COMPLETE); pruned, failed and running ones are left out."""
    return trials[trials["status"] == "COMPLETE"]


def _stage_kind(stage: str) -> str:
    """An old store's stage kind: its name, or the kind its name starts with (students_k1)."""
    for kind in STAGE_KINDS:
        if stage == kind or stage.startswith(kind):
            return kind
    return stage


def with_contract_columns(
    trials: pd.DataFrame,
    metrics: pd.DataFrame | None = None,
    evaluations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The trials with every column read_trials promises (ARCHITECTURE.md), derived where an old store lacks them.

    stage_kind from the stage name, ensemble_size from the teachers each trial distilled from,
    source_stage from source_trial_id, role `baseline` for a baselines stage; plus the two
    columns the analysis derives itself: `epochs_trained` (last iteration with a dev loss) and
    `blimp_pairs` (BLiMP pairs scored, for the chance interval: the overall row's count, else
    the sum of the per-paradigm rows' counts).
    """
    t = trials.copy()
    derived_kind = "stage_kind" not in t.columns
    if derived_kind:
        t["stage_kind"] = [_stage_kind(str(s)) for s in t["stage"]]
    if "ensemble_size" not in t.columns:
        if "teacher_ids" in t.columns:
            t["ensemble_size"] = [
                len(x) if isinstance(x, list | tuple) else 0 for x in t["teacher_ids"]
            ]
        else:
            t["ensemble_size"] = 0
    if "source_stage" not in t.columns:
        stage_of = dict(zip(t["trial_id"], t["stage"], strict=True)) if "trial_id" in t else {}
        sources = t["source_trial_id"] if "source_trial_id" in t.columns else [None] * len(t)
        t["source_stage"] = [
            stage_of.get(s) if s is not None and not pd.isna(s) else None for s in sources
        ]
    if derived_kind:  # an old store stored its alpha=1 controls with role "student"
        t.loc[t["stage_kind"] == "baselines", "role"] = "baseline"
    if "checkpoint_dev_loss" in t.columns and "dev_loss" in t.columns:
        # checkpoint: best hands on an earlier epoch than the last: its dev loss is the one
        # that chose it, and test_loss and BLiMP were measured on it, so dev_loss is its too.
        t["last_dev_loss"] = t["dev_loss"]
        t["dev_loss"] = t["checkpoint_dev_loss"].where(
            t["checkpoint_dev_loss"].notna(), t["dev_loss"]
        )
    for column in ("data_tokens", "test_loss", "dev_loss", "blimp_overall", "seed"):
        if column not in t.columns:
            t[column] = np.nan
    if "epochs_trained" not in t.columns:
        epochs: dict[Any, float] = {}
        if metrics is not None and not metrics.empty and "trial_id" in t.columns:
            dev = metrics[metrics["name"] == SELECTION_METRIC]
            epochs = dev.groupby("trial_id")["iteration"].max().to_dict()
        t["epochs_trained"] = [epochs.get(i, np.nan) for i in t.get("trial_id", [])]
    if "blimp_pairs" not in t.columns:
        pairs: dict[Any, float] = {}
        if evaluations is not None and not evaluations.empty and "trial_id" in t.columns:
            blimp = evaluations[
                (evaluations["suite"] == "blimp") & (evaluations["metric"] == "accuracy")
            ]
            n = pd.to_numeric(blimp["n"], errors="coerce")
            is_overall = blimp["task"] == "overall"
            # the trainable writes the overall row without a count: its paradigms carry them
            per_paradigm = (
                n[~is_overall].groupby(blimp.loc[~is_overall, "trial_id"]).sum(min_count=1)
            )
            overall = n[is_overall].groupby(blimp.loc[is_overall, "trial_id"]).max()
            pairs = overall.combine_first(per_paradigm).dropna().to_dict()
        t["blimp_pairs"] = [pairs.get(i, np.nan) for i in t.get("trial_id", [])]
    return t


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
        read_step_metrics,
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
    from sweep.store.read import open_store

    with open_store(store) as opened:
        row = opened.get_sweep(sweep)
    return Frames(
        sweep=sweep,
        config=dict(row.config) if row is not None and isinstance(row.config, dict) else {},
        sweeps=sweeps,
        trials=read_trials(store, sweep=sweep),
        metrics=read_metrics(store, sweep=sweep),
        evaluations=read_evaluations(store, sweep=sweep),
        ensemble=read_ensemble(store, sweep=sweep),
        storage_url=url,
        steps=read_step_metrics(store, sweep=sweep),
    )
