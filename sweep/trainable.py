"""The Ray Tune function trainable: one trial runs one trainers/ recipe.

It runs on a Ray worker: it builds the trial's RecipeConfig from the stage's base config
and the searcher's params, materialises the teacher checkpoints (shared path or URI),
resumes from Tune's restore checkpoint or the store's last checkpoint, and reports every
epoch to Tune with its checkpoint. The last epoch's report also carries BLiMP (and GLUE
where enabled), so the store gets a trial's evaluation with its final result.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from sweep.config import GlueEvaluation, ZeroShotEvaluation
from trainers.config import RecipeConfig

__all__ = ["DEV_LOSSES", "STEP_LOSSES", "STEP_LOSS_NAME", "TrialContext", "run_trial"]

EVALUATION_KEY = "evaluation"
STEP_LOSSES = "step_losses"
"""Result key: [[optimizer step, train loss], ...] logged since the previous result."""
STEP_LOSS_NAME = "train_loss_step"
"""The per-step train loss's metric name in the store and the trackers."""
DEV_LOSSES = "dev_losses"
"""Result key: [[optimizer step, training tokens seen, dev loss], ...] evaluated within the
epoch (every `tracking.eval_every` steps); the epoch's own dev_loss is at its `step`."""


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a stage shares (sent once to the workers)."""

    recipe: RecipeConfig
    epochs: int
    """The stage's epochs; a trial whose params hold `epochs` trains that many instead."""
    teacher_uris: tuple[str, ...] = ()
    glue: GlueEvaluation | None = None
    zero_shot: ZeroShotEvaluation | None = None
    log_every: int = 10
    """Optimizer steps between two recorded train-loss points."""
    eval_every: int | None = None
    """Optimizer steps between two dev evaluations within an epoch (None: epoch ends only)."""


def run_trial(config: dict[str, Any], context: TrialContext) -> None:
    """Train one trial; report metrics and a checkpoint to Tune after every epoch."""
    started = time.time()  # before the heavy imports: start-up latency ends here
    from ray.tune import Checkpoint
    from ray.tune.result import TIMESTEPS_TOTAL

    from sweep.store.checkpoints import checkpoint_fingerprint
    from trainers.recipe import train

    threads = max(1, int(float(os.environ.get("OMP_NUM_THREADS", "1"))))
    training = context.recipe.training.model_copy(
        update={
            "epochs": context.epochs,
            **config["params"],  # a searched `epochs` is the trial's own
            "seed": config["seed"],
            "threads": context.recipe.training.threads or threads,
        }
    )
    # Validate the merged params as the trainers would (a bad combination fails the trial).
    training = type(training).model_validate(training.model_dump())
    workdir = Path(tempfile.mkdtemp(prefix=f"trial{config['number']}-"))
    recipe = context.recipe.model_copy(update={"training": training, "output_dir": workdir})
    node = {
        "node_id": _node_id(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "worker_started_at": started,
    }

    reported: list[float] = []
    steps: list[list[float]] = []  # the train-loss points since the last report
    evals: list[list[float]] = []  # the within-epoch dev-loss points since the last report
    last_step = [0]

    def on_step(step: int, losses: dict[str, float]) -> None:
        last_step[0] = step
        if step % context.log_every == 0:
            steps.append([step, losses["loss"]])

    def on_eval(step: int, tokens: int, dev_loss: float) -> None:
        evals.append([step, tokens, dev_loss])

    def report(metrics: dict[str, float], checkpoint_dir: Path) -> None:
        reported.append(metrics["epoch"])
        out: dict[str, Any] = {**metrics, **node, STEP_LOSSES: list(steps), DEV_LOSSES: list(evals)}
        steps.clear()
        evals.clear()
        if last_step[0]:
            # Trackers put every metric on the optimizer-step axis (Tune's own step key).
            out[TIMESTEPS_TOTAL] = last_step[0]
        size, sha = checkpoint_fingerprint(checkpoint_dir)
        out["checkpoint_bytes"], out["checkpoint_sha256"] = size, sha
        if int(metrics["epoch"]) >= training.epochs:
            out.update(_evaluate(checkpoint_dir, recipe, context))
        tune.report(out, checkpoint=Checkpoint.from_directory(str(checkpoint_dir)))

    with contextlib.ExitStack() as stack:
        teachers = [
            Path(stack.enter_context(Checkpoint(uri).as_directory()))
            # a planned trial names its own teachers (repeats mix ensembles); else the stage's
            for uri in (
                (tuple(config.get("teacher_uris") or ()) or context.teacher_uris)
                if training.alpha < 1
                else ()
            )
        ]
        restore = tune.get_checkpoint()
        if restore is None and config.get("resume_uri"):
            restore = Checkpoint(config["resume_uri"])
        resume_dir = Path(stack.enter_context(restore.as_directory())) if restore else None
        result = train(
            recipe,
            teacher_dirs=teachers,
            report=report,
            resume_from=resume_dir,
            progress=False,
            on_step=on_step,
            eval_every=context.eval_every,
            on_eval=on_eval,
        )
        if not reported and resume_dir is not None and result.metrics:
            # Killed after its last epoch's checkpoint but before the driver recorded the
            # end: nothing is left to train, so report that final epoch (and evaluate) again.
            report(result.metrics, resume_dir)


def _evaluate(model_dir: Path, recipe: RecipeConfig, context: TrialContext) -> dict[str, Any]:
    """BLiMP per paradigm (and GLUE where enabled) for the final Tune result.

    Returns {"blimp_overall": x, "evaluation": {suite: {task: {"group", "n", metric: value}}}},
    plus glue_average (mean of each task's primary metric) and zeroshot_average (mean of the
    suites' accuracies) where those ran.
    """
    from trainers.evaluate import blimp_accuracy

    blimp = blimp_accuracy(
        model_dir,
        recipe.data.blimp,
        max_pairs_per_paradigm=recipe.data.blimp_pairs_per_paradigm,
        convention=recipe.data.blimp_convention,
    )
    suites: dict[str, dict[str, dict[str, Any]]] = {
        "blimp": {
            paradigm: {"group": score.group, "n": score.n, "accuracy": score.accuracy}
            for paradigm, score in blimp.by_paradigm.items()
        }
    }
    suites["blimp"]["overall"] = {"group": None, "n": None, "accuracy": blimp.overall}
    averages: dict[str, float] = {}
    device = "cuda" if _cuda() else "cpu"
    if context.glue is not None:
        from trainers.evaluate import FinetuneRecipe, glue_average, glue_scores

        glue = context.glue
        suites["glue"] = glue_scores(
            model_dir,
            recipe.data.glue,
            tasks=glue.tasks,
            recipes={t: FinetuneRecipe(**r) for t, r in glue.recipes().items()},
            max_train_examples=glue.max_train_examples,
            max_eval_examples=glue.max_eval_examples,
            seed=glue.seed,
            device=device,
        )
        averages["glue_average"] = glue_average(suites["glue"])
    if context.zero_shot is not None:
        from trainers.evaluate import ZERO_SHOT_SUITES, zero_shot_accuracy

        root = Path(recipe.data.root or Path(recipe.data.glue).parent)
        for suite in context.zero_shot.suites:
            found = zero_shot_accuracy(
                model_dir,
                root / ZERO_SHOT_SUITES[suite].folder,
                suite,
                max_items_per_subtask=context.zero_shot.max_items_per_subtask,
                device=device,
            )
            suites[suite] = {
                name: {"group": None, "n": found.n[name], "accuracy": accuracy}
                for name, accuracy in found.by_subtask.items()
            }
            suites[suite]["overall"] = {"group": None, "n": None, "accuracy": found.overall}
        overall = [suites[s]["overall"]["accuracy"] for s in context.zero_shot.suites]
        averages["zeroshot_average"] = sum(overall) / len(overall)
    return {"blimp_overall": blimp.overall, **averages, EVALUATION_KEY: suites}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _node_id() -> str:
    import ray

    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside Ray (tests calling run_trial directly)
        return socket.gethostname()
