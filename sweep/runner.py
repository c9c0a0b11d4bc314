"""Run one stage of trials on Ray Tune, sampled by Optuna, recorded in the store.

`run_stage` is the engine under `sweep run`: a Tuner over `run_trial` with the stage's
per-trial resources, an ASHA (or FIFO) scheduler on the per-epoch dev loss, the
`StageSearcher`, and `StoreRecorder`, the single driver-side writer. Resuming needs no
Tuner.restore (which fails after a hard kill with RDB storage): the store and the Optuna
study are reconciled first and interrupted trials re-run under their own numbers.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from sweep.config import Param, Resources, Scheduler, max_trial_epochs
from sweep.progress import StageProgress, install_stop_notice
from sweep.search import (
    OBJECTIVE,
    PlannedTrial,
    StageSearcher,
    Suggestion,
    open_study,
    reconcile,
    tell,
)
from sweep.store import (
    EvaluationRow,
    StageStatus,
    Store,
    TrialStatus,
    retry_while_disconnected,
    trial_cost,
)
from sweep.trainable import (
    DEV_LOSSES,
    EVALUATION_KEY,
    STEP_LOSS_NAME,
    STEP_LOSSES,
    TrialContext,
    run_trial,
)

__all__ = [
    "StageInterrupted",
    "StageOutcome",
    "StageSpec",
    "StopNotice",
    "StoreRecorder",
    "run_stage",
]

logger = logging.getLogger(__name__)

# The last epoch's result: dev loss of the model the trial hands on (trainers.recipe).
HANDED_ON_DEV_LOSS = "checkpoint_dev_loss"
# Result keys that are not learning-curve metrics.
_NOT_METRICS = {
    "node_id",
    "hostname",
    "pid",
    "checkpoint_sha256",
    "trial_id",
    "done",
    "timesteps_total",
}


class StageInterrupted(Exception):
    """The stage stopped before every trial finished (Ctrl-C); `--resume` continues it."""


@dataclass(frozen=True)
class StageSpec:
    """One stage's trials: sampled from `space`, or the fixed `plans`."""

    sweep: str
    name: str
    seed: int
    total: int
    role: str
    context: TrialContext
    resources: Resources
    max_failures: int = 0
    scheduler: Scheduler | None = None
    space: dict[str, Param] | None = None
    plans: Sequence[PlannedTrial] | None = None
    teacher_ids: tuple[int, ...] = ()
    ensemble_stage: str | None = None
    """The ensemble stage `teacher_ids` came from (students stages)."""
    data_tokens: int | None = None
    """Training tokens per epoch every trial of the stage sees."""

    @property
    def study_name(self) -> str:
        return f"{self.sweep}/{self.name}"

    def trial_epochs(self, params: dict[str, Any]) -> int:
        """A trial's own epoch count: its `epochs` param, else the stage's."""
        return int(params.get("epochs", self.context.epochs))

    @property
    def max_epochs(self) -> int:
        """The longest trial's epochs (ASHA's max_t)."""
        if self.plans is not None:
            return max([self.context.epochs, *(self.trial_epochs(p.params) for p in self.plans)])
        return max_trial_epochs(self.space or {}, self.context.epochs)


@dataclass
class StageOutcome:
    """Counts by status after the stage ran (or was found finished)."""

    name: str
    counts: dict[TrialStatus, int] = field(default_factory=dict)
    ran: int = 0


class StoreRecorder(tune.Callback):
    """The one writer: trials, metrics, evaluations and checkpoints to the store, then Optuna.

    Every write is an upsert on a natural key, so replaying a result adds nothing twice.
    """

    def __init__(
        self,
        store: Store,
        stage_id: int,
        spec: StageSpec,
        searcher: StageSearcher,
        progress: StageProgress,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store, self.stage_id, self.spec = store, stage_id, spec
        self.searcher, self.progress, self.on_change = searcher, progress, on_change
        self.trial_ids: dict[str, int] = {}
        self.started: dict[str, datetime] = {}  # Tune trial id -> when the store saw it start
        self.nodes: set[str] = set()
        self.recorded: set[str] = set()  # Tune trial ids whose outcome the store holds

    def __getstate__(self) -> dict[str, Any]:
        # Tuner pickles its callbacks for Tuner.restore, which babysweep never uses.
        return {"stage_id": self.stage_id, "trial_ids": self.trial_ids, "started": self.started}

    def _trial_id(self, trial: Trial) -> int:
        if trial.trial_id not in self.trial_ids:
            s = self.searcher.by_tune_id[trial.trial_id]
            resources = {"cpu": self.spec.resources.cpu, "gpu": self.spec.resources.gpu}
            self.started[trial.trial_id] = datetime.now(UTC)
            trial_id = self.store.upsert_trial(
                self.stage_id,
                s.number,
                role=s.role,
                params=s.params,
                seed=s.seed,
                status=TrialStatus.RUNNING,
                tune_trial_id=trial.trial_id,
                optuna_trial_number=s.number,
                resources=resources,
                config=self._trial_config(s.params, s.seed),
                source_trial_id=s.source_trial_id,
                started_at=self.started[trial.trial_id],
                data_tokens=self.spec.data_tokens,
                ensemble_stage=self._distils_from(s)[1],
            )
            teacher_ids, _ = self._distils_from(s)
            if teacher_ids:
                self.store.set_trial_teachers(trial_id, teacher_ids)
            self.trial_ids[trial.trial_id] = trial_id
        return self.trial_ids[trial.trial_id]

    def _distils_from(self, s: Suggestion) -> tuple[tuple[int, ...], str | None]:
        """The teacher trials (and their ensemble stage) a trial distils from; () at alpha=1."""
        alpha = s.params.get("alpha", self.spec.context.recipe.training.alpha)
        if alpha >= 1:
            return (), None
        if s.teachers:
            return tuple(i for i, _ in s.teachers), s.ensemble_stage
        if self.spec.teacher_ids:
            return self.spec.teacher_ids, self.spec.ensemble_stage
        return (), None

    def _trial_config(self, params: dict[str, Any], seed: int) -> dict[str, Any]:
        recipe = self.spec.context.recipe
        training = recipe.training.model_copy(
            update={"epochs": self.spec.context.epochs, **params, "seed": seed}
        )
        return recipe.model_copy(update={"training": training}).model_dump(mode="json")

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._trial_id(trial)
        s = self.searcher.by_tune_id[trial.trial_id]
        self.progress.trial_started(s.number, s.params, epochs=self.spec.trial_epochs(s.params))
        self.on_change()

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any
    ) -> None:
        trial_id = self._trial_id(trial)
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        metrics = {
            k: float(v)
            for k, v in result.items()
            if k not in _NOT_METRICS and isinstance(v, int | float) and not isinstance(v, bool)
        }
        self.store.add_metrics(trial_id, epoch, metrics)
        points = [(int(step), float(loss)) for step, loss in result.get(STEP_LOSSES) or []]
        self.store.add_step_metrics(trial_id, epoch, STEP_LOSS_NAME, points)
        # dev loss within the epoch and at its end: (optimizer step, tokens seen, value)
        evals = [(int(s), int(t), float(v)) for s, t, v in result.get(DEV_LOSSES) or []]
        value = result.get(OBJECTIVE)
        if isinstance(value, int | float) and "step" in result and "tokens_seen" in result:
            evals.append((int(result["step"]), int(result["tokens_seen"]), float(value)))
        self.store.add_step_metrics(trial_id, epoch, OBJECTIVE, [(s, v) for s, _, v in evals])
        self.progress.trial_reported(
            self.searcher.by_tune_id[trial.trial_id].number,
            epoch=epoch,
            loss=points[-1][1] if points else metrics.get("train_loss"),
            dev_loss=metrics.get(OBJECTIVE),
            seconds=metrics.get("time_this_iter_s"),
        )
        self.on_change()
        node = result.get("node_id")
        if node and trial.trial_id not in self.nodes:
            s = self.searcher.by_tune_id[trial.trial_id]
            self.store.upsert_trial(
                self.stage_id, s.number, role=s.role, params=s.params, seed=s.seed, node=str(node)
            )
            self.nodes.add(trial.trial_id)
        evaluation = result.get(EVALUATION_KEY)
        if evaluation:
            self.store.add_evaluations(trial_id, _evaluation_rows(evaluation))
        self.searcher.report_intermediate(
            self.searcher.by_tune_id[trial.trial_id].number, [(t, v) for _, t, v in evals]
        )

    def on_checkpoint(
        self, iteration: int, trials: list[Trial], trial: Trial, checkpoint: Any, **info: Any
    ) -> None:
        last = trial.last_result or {}
        self.store.add_artifact(
            self._trial_id(trial),
            _checkpoint_uri(checkpoint),
            kind="checkpoint",
            iteration=int(last.get("epoch", 0)) or None,
            size_bytes=last.get("checkpoint_bytes"),
            sha256=last.get("checkpoint_sha256"),
        )

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        last = trial.last_result or {}
        epochs = self.spec.trial_epochs(self.searcher.by_tune_id[trial.trial_id].params)
        finished = int(last.get("epoch", 0)) >= epochs
        # The handed-on model's dev loss (checkpoint: best may hand on an earlier epoch).
        objective = last.get(HANDED_ON_DEV_LOSS, last.get(OBJECTIVE))
        if finished and isinstance(objective, int | float) and math.isfinite(objective):
            status = TrialStatus.COMPLETE
        else:
            # Stopped by the scheduler before its last epoch: early-stopped, not finished.
            status = TrialStatus.PRUNED if not finished else TrialStatus.FAILED
        checkpoint = _checkpoint_uri(trial.checkpoint) if trial.checkpoint else None
        self._finish(trial, status, objective=objective, checkpoint_uri=checkpoint)

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        if trial.trial_id in self.recorded:
            # Tune reports an error raised by this recorder after it stored the trial's outcome
            # (its Optuna or display bookkeeping): the stored result stands; a resume tells
            # Optuna whatever it missed (sweep.search.reconcile).
            logger.warning(
                "trial %s: its outcome is in the store; an error after it was recorded is "
                "ignored: %s",
                self.searcher.by_tune_id[trial.trial_id].number,
                _error_text(trial),
            )
            return
        self._finish(trial, TrialStatus.FAILED, error=_error_text(trial))

    def _finish(self, trial: Trial, status: TrialStatus, **fields: Any) -> None:
        trial_id = self._trial_id(trial)
        objective = fields.get("objective")
        if status != TrialStatus.COMPLETE:
            fields["objective"] = None
        ended = datetime.now(UTC)
        last = trial.last_result or {}
        cost = trial_cost(
            started_at=self.started.get(trial.trial_id),
            ended_at=ended,
            resources={"cpu": self.spec.resources.cpu, "gpu": self.spec.resources.gpu},
            metrics=last,
        )
        self.store.finish_trial(trial_id, status, ended_at=ended, cost=cost, **fields)
        self.recorded.add(trial.trial_id)
        suggestion = self.searcher.by_tune_id[trial.trial_id]
        attrs = {
            "role": suggestion.role,
            "store_trial_id": trial_id,
            "checkpoint_uri": fields.get("checkpoint_uri"),
            "test_loss": last.get("test_loss"),
            "blimp_overall": last.get("blimp_overall"),
        }
        # optuna-dashboard shows user attributes; a finished Optuna trial takes none.
        set_user_attrs(self.searcher.study, suggestion.optuna_trial_id, attrs)
        tell(self.searcher.study, suggestion.number, status, objective)  # the store first
        best = float(objective) if isinstance(objective, int | float) else None
        self.progress.trial_finished(suggestion.number, str(status), best)
        self.on_change()


class StopNotice(tune.Callback):
    """Calls `notify` the moment Ctrl-C arrives during a stage, before Tune winds down."""

    def __init__(self, notify: Callable[[], None]) -> None:
        self.notify = notify

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def setup(self, *args: Any, **info: Any) -> None:
        # Tune installs its own SIGINT handler just before it sets its callbacks up.
        install_stop_notice(self.notify)


def set_user_attrs(study: optuna.Study, optuna_trial_id: int, attrs: dict[str, Any]) -> None:
    """Set an unfinished Optuna trial's user attributes (None values are left out).

    The whole write is retried on a lost connection, building the Trial included: its
    constructor reads the trial from the storage.
    """
    kept = {
        k: v
        for k, v in attrs.items()
        if v is not None and not (isinstance(v, float) and not math.isfinite(v))
    }

    def write() -> None:
        trial = optuna.trial.Trial(study, optuna_trial_id)
        for key, value in kept.items():
            trial.set_user_attr(key, value)

    retry_while_disconnected(write)


def run_stage(
    spec: StageSpec,
    *,
    store: Store,
    stage_id: int,
    storage_path: str,
    progress: StageProgress | None = None,
    on_change: Callable[[], None] = lambda: None,
    callbacks: Sequence[tune.Callback] = (),
) -> StageOutcome:
    """Run (or finish) one stage; returns the counts. Raises StageInterrupted on Ctrl-C."""
    study = open_study(store.url, spec.study_name, seed=spec.seed, trials=spec.total)
    adopted = reconcile(study, store, stage_id)
    searcher = StageSearcher(
        study,
        total=spec.total,
        seed=spec.seed,
        role=spec.role,
        space=spec.space,
        plans=spec.plans,
        adopted=adopted,
    )
    progress = progress or StageProgress(spec.name, spec.total, spec.context.epochs)
    _count_into(progress, study)
    to_run = searcher.remaining
    # Failed trials go to the store with their error text and to the live table, not
    # as tracebacks on the console.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)
    if to_run > 0:
        store.set_stage_status(stage_id, StageStatus.RUNNING)
        recorder = StoreRecorder(store, stage_id, spec, searcher, progress, on_change)
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, context=spec.context),
            {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu},
        )
        experiment = f"{spec.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=_scheduler(spec.scheduler, spec.max_epochs),
                num_samples=to_run,
                reuse_actors=True,
                trial_name_creator=_trial_name(spec.name),
                trial_dirname_creator=_trial_name(spec.name),
            ),
            run_config=tune.RunConfig(
                name=experiment,
                storage_path=storage_path,
                callbacks=[recorder, *callbacks],
                failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                verbose=0,
            ),
        )
        try:
            tuner.fit()
        finally:
            _remove_if_no_trials(storage_path, experiment)
    counts = _counts(study)
    finished = (TrialStatus.COMPLETE, TrialStatus.PRUNED, TrialStatus.FAILED)
    if sum(counts.get(s, 0) for s in finished) < spec.total:
        raise StageInterrupted(spec.name)
    store.set_stage_status(stage_id, StageStatus.COMPLETE)
    return StageOutcome(spec.name, counts, ran=to_run)


def _trial_name(stage: str) -> Callable[[Trial], str]:
    """`teachers-007-1c6f9806`: stage, Optuna number, Tune's short id (not Ray's param string)."""

    def name(trial: Trial) -> str:
        return f"{stage}-{int(trial.config.get('number', 0)):03d}-{trial.trial_id}"

    return name


def _remove_if_no_trials(storage_path: str, experiment: str) -> None:
    """An interrupted run that started no trial leaves only Tune's bookkeeping: remove it."""
    if "://" in storage_path:
        return
    folder = Path(storage_path) / experiment
    if folder.is_dir() and not any(p.is_dir() for p in folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the sweep's folder too, if this was all it held
            folder.parent.rmdir()


def _scheduler(config: Scheduler | None, epochs: int) -> TrialScheduler:
    if config is None or config.type == "none" or epochs <= 1:
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="epoch",
        metric=OBJECTIVE,
        mode="min",
        max_t=epochs,
        grace_period=config.grace_period,
        reduction_factor=config.reduction_factor,
    )


# Optuna's trial states in the store's words (Optuna says FAIL where the store says FAILED)
_STATUS_OF_STATE = {
    TrialState.COMPLETE: TrialStatus.COMPLETE,
    TrialState.PRUNED: TrialStatus.PRUNED,
    TrialState.FAIL: TrialStatus.FAILED,
    TrialState.RUNNING: TrialStatus.RUNNING,
    TrialState.WAITING: TrialStatus.RUNNING,
}


def _counts(study: optuna.Study) -> dict[TrialStatus, int]:
    counts: dict[TrialStatus, int] = {}
    for trial in retry_while_disconnected(lambda: study.get_trials(deepcopy=False)):
        status = _STATUS_OF_STATE[trial.state]
        counts[status] = counts.get(status, 0) + 1
    return counts


def _count_into(progress: StageProgress, study: optuna.Study) -> None:
    counts = _counts(study)
    progress.complete = counts.get(TrialStatus.COMPLETE, 0)
    progress.pruned = counts.get(TrialStatus.PRUNED, 0)
    progress.failed = counts.get(TrialStatus.FAILED, 0)
    trials = retry_while_disconnected(lambda: study.get_trials(deepcopy=False))
    values = [t.value for t in trials if t.value is not None]
    progress.best = min(values) if values else None


def _evaluation_rows(evaluation: dict[str, Any]) -> list[EvaluationRow]:
    rows = []
    for suite, tasks in evaluation.items():
        for task, scores in tasks.items():
            group, n = scores.get("group"), scores.get("n")
            for metric, value in scores.items():
                if metric in {"group", "n"}:
                    continue
                rows.append(EvaluationRow(suite, task, group, metric, float(value), n))
    return rows


def _checkpoint_uri(checkpoint: Any) -> str:
    """A local path, or scheme://path for object stores (what `Checkpoint(uri)` reads back)."""
    fs = getattr(checkpoint, "filesystem", None)
    scheme = getattr(fs, "type_name", "local") if fs is not None else "local"
    return str(checkpoint.path) if scheme == "local" else f"{scheme}://{checkpoint.path}"


def _error_text(trial: Trial) -> str:
    """The root error's last line first (e.g. 'NonFiniteLossError: ...'), then the traceback."""
    # Tune writes the error to the trial's local folder before the callbacks run.
    path = trial.error_file
    if path and Path(path).is_file():
        text = Path(path).read_text(errors="replace")
    else:
        error = trial.get_error()
        text = str(error) if error is not None else "trial failed (no error recorded)"
    lines = [line for line in text.splitlines() if line.strip()]
    root = next((ln.strip() for ln in reversed(lines) if "Error" in ln.split(":")[0]), lines[-1])
    return f"{root}\n\n{text[-4000:]}"
