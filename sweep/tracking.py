"""Experiment trackers: each trial as a W&B run, an MLflow run and TensorBoard event files.

Ray Tune's own logger callbacks do the work (WandbLoggerCallback, MLflowLoggerCallback,
TBXLoggerCallback); the subclasses here add what a sweep needs and they lack:
- the trial's stage, role and Optuna number as tags (and in the run's name and config);
- the per-step train loss and the dev loss within epochs, which a trial sends batched in
  each epoch's result (`STEP_LOSSES`, `DEV_LOSSES`), as their own points on the
  optimizer-step axis (train_loss_step; dev_loss, the same series as the epochs' dev_loss);
- that axis for every metric: the epoch's result is logged at the epoch's last optimizer
  step (`timesteps_total`, which Ray's MLflow and TensorBoard callbacks already use).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ray.air.constants import TRAINING_ITERATION
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.logger import TBXLoggerCallback
from ray.tune.result import TIMESTEPS_TOTAL

from sweep.config import MlflowTracking, TensorBoardTracking, TrackingConfig, WandbTracking
from sweep.errors import SweepError
from sweep.trainable import DEV_LOSSES, EVALUATION_KEY, STEP_LOSS_NAME, STEP_LOSSES

__all__ = ["tracker_callbacks", "trial_tags"]

# Result keys no tracker should log as metrics.
_NOT_LOGGED = (
    "config",
    STEP_LOSSES,
    DEV_LOSSES,
    EVALUATION_KEY,
    "node_id",
    "hostname",
    "pid",
    "done",
)


def trial_tags(stage: str, trial: Trial) -> dict[str, str]:
    """What identifies a trial across trackers: its stage, role and Optuna number."""
    config = trial.config or {}
    return {
        "stage": stage,
        "role": str(config.get("role", "")),
        "optuna_number": str(config.get("number", "")),
    }


def tracker_callbacks(tracking: TrackingConfig, *, sweep: str, stage: str) -> list[Callback]:
    """The configured trackers' Tune callbacks for one stage (none by default)."""
    callbacks: list[Callback] = []
    if tracking.wandb is not None:
        callbacks.append(_wandb_callback(tracking.wandb, sweep, stage))
    if tracking.mlflow is not None:
        callbacks.append(_mlflow_callback(tracking.mlflow, sweep, stage))
    if tracking.tensorboard is not None:
        callbacks.append(_TensorBoardLogger(tracking.tensorboard, sweep, stage))
    return callbacks


def _step(result: dict[str, Any]) -> int:
    return int(result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION])


def _metrics(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in _NOT_LOGGED}


def _points(result: dict[str, Any]) -> list[tuple[int, dict[str, float]]]:
    """The result's within-epoch points, [(optimizer step, {metric: value})] by step."""
    points: dict[int, dict[str, float]] = {}
    for step, loss in result.get(STEP_LOSSES) or []:
        points.setdefault(int(step), {})[STEP_LOSS_NAME] = float(loss)
    for step, _tokens, loss in result.get(DEV_LOSSES) or []:
        points.setdefault(int(step), {})["dev_loss"] = float(loss)
    return sorted(points.items())


# --- TensorBoard ---------------------------------------------------------------------


class _TensorBoardLogger(TBXLoggerCallback):
    """Ray's TBX logger writing to <dir>/<stage>/trial_<number> instead of Tune's trial folder."""

    def __init__(self, config: TensorBoardTracking, sweep: str, stage: str) -> None:
        super().__init__()
        self.root = Path(config.dir or "tensorboard")
        self.sweep, self.stage = sweep, stage

    def log_trial_start(self, trial: Trial) -> None:
        if trial in self._trial_writer:
            self._trial_writer[trial].close()
        tags = trial_tags(self.stage, trial)
        folder = self.root / self.stage / f"trial_{tags['optuna_number']}"
        folder.mkdir(parents=True, exist_ok=True)
        writer = self._summary_writer_cls(str(folder), flush_secs=30)
        writer.add_text(
            "trial", ", ".join(f"{k}={v}" for k, v in {"sweep": self.sweep, **tags}.items())
        )
        self._trial_writer[trial] = writer
        self._trial_result[trial] = {}

    def log_trial_result(self, iteration: int, trial: Trial, result: dict) -> None:
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        writer = self._trial_writer[trial]
        for step, values in _points(result):
            for name, value in values.items():
                writer.add_scalar(f"ray/tune/{name}", value, global_step=step)
        super().log_trial_result(iteration, trial, _metrics(result))


# --- MLflow --------------------------------------------------------------------------


def _mlflow_callback(config: MlflowTracking, sweep: str, stage: str) -> Callback:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class MlflowLogger(MLflowLoggerCallback):
        """Ray's MLflow logger: a run per trial tagged with stage, role and Optuna number."""

        def log_trial_start(self, trial: Trial) -> None:
            if trial not in self._trial_runs:
                tags = {"sweep": sweep, **trial_tags(stage, trial)}
                name = f"{stage}-{tags['optuna_number']}"
                run = self.mlflow_util.start_run(tags=tags, run_name=name)
                self._trial_runs[trial] = run.info.run_id
                config = trial.config or {}
                params = {**config.get("params", {}), "seed": config.get("seed")}
                self.mlflow_util.log_params(run_id=run.info.run_id, params_to_log=params)

        def log_trial_result(self, iteration: int, trial: Trial, result: dict) -> None:
            if trial not in self._trial_runs:
                self.log_trial_start(trial)
            points = _points(result)
            if points:
                from mlflow import MlflowClient
                from mlflow.entities import Metric

                client = MlflowClient(self.tracking_uri)
                now = int(result.get("timestamp", 0) * 1000)
                client.log_batch(
                    self._trial_runs[trial],
                    metrics=[
                        Metric(name, value, now, step)
                        for step, values in points
                        for name, value in values.items()
                    ],
                )
            super().log_trial_result(iteration, trial, _metrics(result))

    return MlflowLogger(tracking_uri=config.tracking_uri, experiment_name=config.experiment)


# --- Weights & Biases ------------------------------------------------------------------


def _wandb_callback(config: WandbTracking, sweep: str, stage: str) -> Callback:
    from ray.air.integrations import wandb as ray_wandb

    if config.mode == "online":
        try:
            ray_wandb._set_api_key()
        except ValueError:
            raise SweepError(
                "tracking.wandb: no W&B API key; set WANDB_API_KEY, run `wandb login`, "
                "or use mode: offline"
            ) from None
    Path(config.dir or "wandb").mkdir(parents=True, exist_ok=True)

    class WandbRun(ray_wandb._WandbLoggingActor):
        """Ray's per-trial W&B process, logging on the optimizer-step axis."""

        def run(self) -> None:
            # Ray's loop, but W&B's step is the optimizer step (monotonic), not the epoch.
            os.environ["WANDB_START_METHOD"] = "thread"
            run = self._wandb.init(*self.args, **self.kwargs)
            while True:
                kind, content = self.queue.get()
                if kind == ray_wandb._QueueItem.END:
                    break
                if kind == ray_wandb._QueueItem.CHECKPOINT:
                    self._handle_checkpoint(content)
                    continue
                for step, values in _points(content):
                    run.log(values, step=step)
                log, config_update = self._handle_result(_metrics(content))
                run.config.update(config_update, allow_val_change=True)
                run.log(log, step=_step(content))
            run.finish()

    class WandbLogger(ray_wandb.WandbLoggerCallback):
        """Ray's W&B logger: a run per trial named <stage>-<number>, tagged stage and role."""

        _logger_actor_cls = WandbRun

        def setup(self, *args: Any, **kwargs: Any) -> None:
            return None  # project is given and the API key was checked above

        def log_trial_start(self, trial: Trial) -> None:
            tags = trial_tags(stage, trial)
            config = trial.config or {}
            self.kwargs = {
                **base,
                "name": f"{stage}-{tags['optuna_number']}",
                "tags": [f"stage:{stage}", f"role:{tags['role']}"],
                "config": {
                    **config.get("params", {}),
                    "seed": config.get("seed"),
                    "sweep": sweep,
                    **tags,
                },
            }
            super().log_trial_start(trial)

    base: dict[str, Any] = {"mode": config.mode, "dir": config.dir, "entity": config.entity}
    return WandbLogger(project=config.project, group=f"{sweep}/{stage}", excludes=list(_NOT_LOGGED))
