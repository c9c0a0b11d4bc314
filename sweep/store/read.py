"""The read API for analysis/: the store as pandas DataFrames, each from one short read-only
transaction (one snapshot; never a write lock, so reading never blocks a running sweep).

Every reader takes a Store or a URL and an optional sweep name (None: every sweep); every
frame has a `sweep` column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from sweep.errors import StoreError
from sweep.store.cost import (
    COST_COLUMNS,
    NUM_PARAMETERS,
    TrialCost,
    llama_parameters,
    trial_cost,
)
from sweep.store.models import (
    EnsembleMemberModel,
    Evaluation,
    StageModel,
    Sweep,
    Trial,
    TrialMetric,
    TrialStepMetric,
    TrialTeacher,
)
from sweep.store.store import Store

__all__ = [
    "TRIAL_COLUMNS",
    "open_store",
    "read_ensemble",
    "read_evaluations",
    "read_metrics",
    "read_step_metrics",
    "read_sweeps",
    "read_trials",
    "select_sweeps",
]

SWEEP_COLUMNS = [
    "sweep",
    "status",
    "config_hash",
    "code_version",
    "created_at",
    "finished_at",
    "n_trials",
]
TRIAL_COLUMNS = [
    "sweep",
    "stage",
    "stage_kind",
    "trial_id",
    "number",
    "role",
    "status",
    "seed",
    "objective",
    "source_trial_id",
    "source_stage",
    "teacher_ids",
    "ensemble_size",
    "ensemble_stage",
    "data_tokens",
    "node",
    "tune_trial_id",
    "optuna_trial_number",
    "started_at",
    "ended_at",
    "duration_s",
    "device_seconds",
    "tokens_trained",
    "train_flops",
    "error",
    "checkpoint_uri",
]
METRIC_COLUMNS = ["sweep", "stage", "trial_id", "number", "iteration", "name", "value"]
STEP_METRIC_COLUMNS = ["sweep", "stage", "trial_id", "number", "epoch", "step", "name", "value"]
EVALUATION_COLUMNS = [
    "sweep",
    "stage",
    "trial_id",
    "number",
    "suite",
    "task",
    "group",
    "metric",
    "value",
    "n",
]
ENSEMBLE_COLUMNS = ["sweep", "trial_id", "number", "rank", "value"]

_DTYPES = {
    "trial_id": "int64",
    "number": "int64",
    "seed": "Int64",
    "objective": "float64",
    "source_trial_id": "Int64",
    "ensemble_size": "int64",
    "data_tokens": "Int64",
    "optuna_trial_number": "Int64",
    "duration_s": "float64",
    "iteration": "int64",
    "value": "float64",
    "n": "Int64",
    "rank": "int64",
    "n_trials": "int64",
}
_TIMESTAMPS = ("created_at", "finished_at", "started_at", "ended_at")


_Q = TypeVar("_Q", bound=sa.Select)  # a query of any columns


@contextmanager
def open_store(store: Store | str) -> Iterator[Store]:
    """The given Store, or one opened read-only on a URL (never migrates it) and closed after."""
    if isinstance(store, Store):
        yield store
        return
    opened = Store(store, upgrade=False)
    try:
        yield opened
    finally:
        opened.dispose()


def select_sweeps(session: Session, sweep: str | None, store: Store) -> dict[int, str]:
    """{sweep id: name} for `sweep`, or for every sweep when None."""
    names = {i: n for i, n in session.execute(sa.select(Sweep.id, Sweep.name).order_by(Sweep.id))}
    if sweep is None:
        return names
    chosen = {i: n for i, n in names.items() if n == sweep}
    if not chosen:
        known = ", ".join(repr(n) for n in names.values()) or "no sweeps yet"
        raise StoreError(
            f"there is no sweep named {sweep!r} in {store.masked_url}; it holds: {known}"
        )
    return chosen


def _frame(
    records: list[dict[str, Any]] | list[tuple[Any, ...]], columns: list[str]
) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=columns)
    for column in columns:
        if column in _TIMESTAMPS:
            frame[column] = pd.to_datetime(frame[column], utc=True)
        elif column in _DTYPES:
            frame[column] = frame[column].astype(_DTYPES[column])
    return frame


def read_sweeps(store: Store | str) -> pd.DataFrame:
    """One row per sweep: sweep, status, config_hash, code_version, created_at, finished_at,
    n_trials."""
    with open_store(store) as opened, opened.session(readonly=True) as session:
        n_trials = (
            sa.select(sa.func.count(Trial.id))
            .join(StageModel, StageModel.id == Trial.stage_id)
            .where(StageModel.sweep_id == Sweep.id)
            .scalar_subquery()
        )
        rows = session.execute(
            sa.select(
                Sweep.name,
                Sweep.status,
                Sweep.config_hash,
                Sweep.code_version,
                Sweep.created_at,
                Sweep.finished_at,
                n_trials,
            ).order_by(Sweep.id)
        ).all()
    return _frame([tuple(r) for r in rows], SWEEP_COLUMNS)


def _in_sweeps(query: _Q, sweep_ids: Mapping[int, str], *, trials: bool = True) -> _Q:
    """The one join chain of every reader: sweep -> its stages (-> their trials), limited
    to the chosen sweeps; callers join further tables (metrics, evaluations) onto it."""
    query = query.select_from(Sweep).join(StageModel, StageModel.sweep_id == Sweep.id)
    if trials:
        query = query.join(Trial, Trial.stage_id == StageModel.id)
    return query.where(Sweep.id.in_(list(sweep_ids)))


def _trials_of(sweep_ids: Mapping[int, str]) -> sa.Select[tuple[int]]:
    return _in_sweeps(sa.select(Trial.id), sweep_ids)


def read_trials(store: Store | str, sweep: str | None = None) -> pd.DataFrame:
    """One row per trial: the TRIAL_COLUMNS, then `param_<name>` per param, each metric's
    value at its last iteration (dev_loss, train_loss, ...), `blimp_overall`, and the other
    suites' results as `<suite>_<metric>` (task "overall") or `<suite>_<task>_<metric>`.

    Per the analysis contract: `stage` is the declared name and `stage_kind` its StageKind;
    `source_stage` the stage of the trial a baseline, repeat or reference re-ran;
    `ensemble_size` the teachers a trial distilled from (0: none) and `ensemble_stage` the
    ensemble stage they came from; `data_tokens` the training tokens per epoch it saw."""
    with open_store(store) as opened, opened.session(readonly=True) as session:
        sweep_ids = select_sweeps(session, sweep, opened)
        trials = session.execute(
            _in_sweeps(
                sa.select(Sweep.name, StageModel.name, StageModel.kind, Trial), sweep_ids
            ).order_by(Sweep.id, StageModel.id, Trial.number)
        ).all()
        teachers = session.execute(
            sa.select(TrialTeacher.student_trial_id, TrialTeacher.teacher_trial_id)
            .where(TrialTeacher.student_trial_id.in_(_trials_of(sweep_ids)))
            .order_by(TrialTeacher.student_trial_id, TrialTeacher.position)
        ).all()
        last = (
            sa.select(
                TrialMetric.trial_id,
                TrialMetric.name,
                sa.func.max(TrialMetric.iteration).label("iteration"),
            )
            .where(TrialMetric.trial_id.in_(_trials_of(sweep_ids)))
            .group_by(TrialMetric.trial_id, TrialMetric.name)
            .subquery()
        )
        finals = session.execute(
            sa.select(TrialMetric.trial_id, TrialMetric.name, TrialMetric.value).join(
                last,
                sa.and_(
                    TrialMetric.trial_id == last.c.trial_id,
                    TrialMetric.name == last.c.name,
                    TrialMetric.iteration == last.c.iteration,
                ),
            )
        ).all()
        evaluations = session.execute(
            sa.select(
                Evaluation.trial_id,
                Evaluation.suite,
                Evaluation.task,
                Evaluation.metric,
                Evaluation.value,
            ).where(Evaluation.trial_id.in_(_trials_of(sweep_ids)))
        ).all()

    teacher_ids: dict[int, list[int]] = {}
    for student, teacher in teachers:
        teacher_ids.setdefault(student, []).append(teacher)
    costs = _costs_on_read([t for *_, t in trials], teacher_ids, finals)
    stage_of = {trial.id: stage_name for _, stage_name, _, trial in trials}
    records: list[dict[str, Any]] = []
    params: dict[int, dict[str, Any]] = {}
    for sweep_name, stage_name, stage_kind, trial in trials:
        duration = (
            (trial.ended_at - trial.started_at).total_seconds()
            if trial.ended_at is not None and trial.started_at is not None
            else math.nan
        )
        records.append(
            {
                "sweep": sweep_name,
                "stage": stage_name,
                # stages stored before revision 0004 were named after their kind
                "stage_kind": stage_kind or stage_name,
                "trial_id": trial.id,
                "number": trial.number,
                "role": trial.role,
                "status": trial.status,
                "seed": trial.seed,
                "objective": math.nan if trial.objective is None else trial.objective,
                "source_trial_id": trial.source_trial_id,
                "source_stage": stage_of.get(trial.source_trial_id or -1),
                "teacher_ids": teacher_ids.get(trial.id, []),
                "ensemble_size": len(teacher_ids.get(trial.id, [])),
                "ensemble_stage": trial.ensemble_stage,
                "data_tokens": trial.data_tokens,
                "node": trial.node,
                "tune_trial_id": trial.tune_trial_id,
                "optuna_trial_number": trial.optuna_trial_number,
                "started_at": trial.started_at,
                "ended_at": trial.ended_at,
                "duration_s": duration,
                **_cost_of(trial, costs),
                "error": trial.error,
                "checkpoint_uri": trial.checkpoint_uri,
            }
        )
        params[trial.id] = _flatten(trial.params or {})
    frame = _frame(records, TRIAL_COLUMNS)

    taken = set(TRIAL_COLUMNS)
    extra: dict[str, dict[int, Any]] = {}  # column -> {trial id: value}
    for name in sorted({k for p in params.values() for k in p}):
        extra[_free_name(f"param_{name}", taken)] = {
            i: p[name] for i, p in params.items() if name in p
        }
    by_metric: dict[str, dict[int, float]] = {}
    for trial_id, name, value in finals:
        by_metric.setdefault(name, {})[trial_id] = math.nan if value is None else value
    for name in sorted(by_metric):
        extra[_free_name(_column_name(name), taken)] = by_metric[name]
    for column, values in _evaluation_columns(evaluations).items():
        extra[_free_name(column, taken)] = values

    ids = frame["trial_id"]
    columns = {}
    for column, values in extra.items():
        series = ids.map(values)
        if not column.startswith("param_"):
            series = series.astype("float64")
        elif values and all(type(v) is int for v in values.values()):
            series = series.astype("Int64")  # an integer param stays integer despite gaps
        columns[column] = series
    if "blimp_overall" not in columns:
        columns["blimp_overall"] = pd.Series(math.nan, index=frame.index, dtype="float64")
    return pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)


def _costs_on_read(
    trials: Sequence[Trial], teacher_ids: dict[int, list[int]], finals: Sequence[Any]
) -> dict[int, TrialCost]:
    """The cost of rows written before revision 0007 (NULL there), from the same timings,
    resources and last metrics the recorder uses; parameters from the stored config when the
    trial reported none."""
    old = [t for t in trials if t.device_seconds is None and t.train_flops is None]
    if not old:
        return {}
    wanted = {t.id for t in old}
    metrics: dict[int, dict[str, float]] = {}
    for trial_id, name, value in finals:
        if trial_id in wanted and value is not None:
            metrics.setdefault(trial_id, {})[name] = value
    by_id = {t.id: t for t in trials}
    sizes: dict[int, int | None] = {}

    def parameters(trial_id: int) -> int | None:
        if trial_id not in sizes:
            trial = by_id.get(trial_id)
            reported = metrics.get(trial_id, {}).get(NUM_PARAMETERS)
            sizes[trial_id] = (
                int(reported)
                if reported is not None
                else llama_parameters(trial.config or {})
                if trial is not None
                else None
            )
        return sizes[trial_id]

    out = {}
    for trial in old:
        teachers = [parameters(i) for i in teacher_ids.get(trial.id, [])]
        out[trial.id] = trial_cost(
            started_at=trial.started_at,
            ended_at=trial.ended_at,
            resources=trial.resources,
            metrics=metrics.get(trial.id, {}),
            parameters=parameters(trial.id),
            teacher_parameters=None if None in teachers else float(sum(t or 0 for t in teachers)),
        )
    return out


def _cost_of(trial: Trial, costs: dict[int, TrialCost]) -> dict[str, float]:
    """The stored cost columns, else the cost computed on read (NaN where unknowable)."""
    stored = TrialCost(trial.device_seconds, trial.tokens_trained, trial.train_flops)
    found = costs.get(trial.id, stored)
    return {
        column: math.nan if getattr(found, column) is None else float(getattr(found, column))
        for column in COST_COLUMNS
    }


def _evaluation_columns(rows: Sequence[Any]) -> dict[str, dict[int, float]]:
    """blimp_overall (the overall row, else the mean over paradigms) and the other suites."""
    columns: dict[str, dict[int, float]] = {}
    blimp_overall: dict[int, dict[str, float]] = {}  # trial -> metric -> value
    blimp_tasks: dict[int, dict[str, list[float]]] = {}
    other: dict[tuple[int, str], list[tuple[str, str, float]]] = {}  # (trial, suite) -> rows
    for trial_id, suite, task, metric, value in rows:
        number = math.nan if value is None else value
        if suite == "blimp":
            if task == "overall":
                blimp_overall.setdefault(trial_id, {})[metric] = number
            else:
                blimp_tasks.setdefault(trial_id, {}).setdefault(metric, []).append(number)
        else:
            other.setdefault((trial_id, suite), []).append((task, metric, number))
    overall: dict[int, float] = {}
    for trial_id in blimp_overall.keys() | blimp_tasks.keys():
        if trial_id in blimp_overall:
            by_metric = blimp_overall[trial_id]
        else:
            by_metric = {m: _mean(v) for m, v in blimp_tasks[trial_id].items()}
        overall[trial_id] = by_metric.get("accuracy", next(iter(by_metric.values())))
    if overall:
        columns["blimp_overall"] = overall
    for (trial_id, suite), suite_rows in other.items():
        has_overall = any(task == "overall" for task, _, _ in suite_rows)
        for task, metric, number in suite_rows:
            if task == "overall":
                column = _column_name(f"{suite}_{metric}")
            elif not has_overall:
                column = _column_name(f"{suite}_{task}_{metric}")
            else:
                continue
            columns.setdefault(column, {})[trial_id] = number
    return dict(sorted(columns.items(), key=lambda kv: (kv[0] != "blimp_overall", kv[0])))


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _column_name(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.]+", "_", text).strip("_").lower()


def _free_name(column: str, taken: set[str]) -> str:
    """`column`, or `metric_<column>` if a fixed column already has that name."""
    while column in taken:
        column = f"metric_{column}"
    taken.add(column)
    return column


def read_metrics(store: Store | str, sweep: str | None = None) -> pd.DataFrame:
    """The learning curves, long: sweep, stage, trial_id, number, iteration, name, value."""
    with open_store(store) as opened, opened.session(readonly=True) as session:
        sweep_ids = select_sweeps(session, sweep, opened)
        query = sa.select(
            Sweep.name,
            StageModel.name,
            Trial.id,
            Trial.number,
            TrialMetric.iteration,
            TrialMetric.name,
            TrialMetric.value,
        )
        rows = session.execute(
            _in_sweeps(query, sweep_ids)
            .join(TrialMetric, TrialMetric.trial_id == Trial.id)
            .order_by(
                Sweep.id, StageModel.id, Trial.number, TrialMetric.iteration, TrialMetric.name
            )
        ).all()
    return _frame([tuple(r) for r in rows], METRIC_COLUMNS)


def read_step_metrics(store: Store | str, sweep: str | None = None) -> pd.DataFrame:
    """Within-epoch curves, long: sweep, stage, trial_id, number, epoch, step, name, value
    (train_loss_step every `tracking.log_every` optimizer steps; dev_loss at epoch ends and
    every `tracking.eval_every` steps)."""
    with open_store(store) as opened, opened.session(readonly=True) as session:
        sweep_ids = select_sweeps(session, sweep, opened)
        rows = session.execute(
            sa.select(
                Sweep.name,
                StageModel.name,
                Trial.id,
                Trial.number,
                TrialStepMetric.epoch,
                TrialStepMetric.step,
                TrialStepMetric.name,
                TrialStepMetric.value,
            )
            .join(StageModel, StageModel.sweep_id == Sweep.id)
            .join(Trial, Trial.stage_id == StageModel.id)
            .join(TrialStepMetric, TrialStepMetric.trial_id == Trial.id)
            .where(Sweep.id.in_(list(sweep_ids)))
            .order_by(
                Sweep.id, StageModel.id, Trial.number, TrialStepMetric.name, TrialStepMetric.step
            )
        ).all()
    return _frame([tuple(r) for r in rows], STEP_METRIC_COLUMNS)


def read_evaluations(store: Store | str, sweep: str | None = None) -> pd.DataFrame:
    """Every evaluation result: sweep, stage, trial_id, number, suite, task, group, metric,
    value, n (BLiMP: one row per paradigm, group = its phenomenon)."""
    with open_store(store) as opened, opened.session(readonly=True) as session:
        sweep_ids = select_sweeps(session, sweep, opened)
        query = sa.select(
            Sweep.name,
            StageModel.name,
            Trial.id,
            Trial.number,
            Evaluation.suite,
            Evaluation.task,
            Evaluation.task_group,
            Evaluation.metric,
            Evaluation.value,
            Evaluation.n,
        )
        rows = session.execute(
            _in_sweeps(query, sweep_ids)
            .join(Evaluation, Evaluation.trial_id == Trial.id)
            .order_by(
                Sweep.id,
                StageModel.id,
                Trial.number,
                Evaluation.suite,
                Evaluation.task,
                Evaluation.metric,
            )
        ).all()
    return _frame([tuple(r) for r in rows], EVALUATION_COLUMNS)


def read_ensemble(store: Store | str, sweep: str | None = None) -> pd.DataFrame:
    """The teacher trials the ensemble stage picked: sweep, trial_id, number, rank, value."""
    with open_store(store) as opened, opened.session(readonly=True) as session:
        sweep_ids = select_sweeps(session, sweep, opened)
        query = sa.select(
            Sweep.name,
            EnsembleMemberModel.trial_id,
            Trial.number,
            EnsembleMemberModel.rank,
            EnsembleMemberModel.value,
        )
        rows = session.execute(
            _in_sweeps(query, sweep_ids, trials=False)
            .join(EnsembleMemberModel, EnsembleMemberModel.stage_id == StageModel.id)
            .join(Trial, Trial.id == EnsembleMemberModel.trial_id)
            .order_by(Sweep.id, EnsembleMemberModel.rank)
        ).all()
    return _frame([tuple(r) for r in rows], ENSEMBLE_COLUMNS)
