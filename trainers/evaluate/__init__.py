"""Evaluation of trained checkpoints: BLiMP and BabyLM's zero-shot suites, (Super)GLUE
fine-tuning, dev/test loss."""

from trainers.evaluate.blimp import BlimpResult, ParadigmScore, blimp_accuracy
from trainers.evaluate.glue import (
    GLUE_TASKS,
    classification_metrics,
    glue_average,
    glue_scores,
    read_glue_task,
)
from trainers.evaluate.loss import evaluate_loss
from trainers.evaluate.tasks import (
    BABYLM_2023_RECIPES,
    BABYLM_2024_RECIPE,
    FINETUNE_TASKS,
    FinetuneRecipe,
    majority_baseline,
    not_above_majority,
    read_task,
    task_metrics,
)
from trainers.evaluate.zeroshot import ZERO_SHOT_SUITES, ZeroShotResult, zero_shot_accuracy

__all__ = [
    "BABYLM_2023_RECIPES",
    "BABYLM_2024_RECIPE",
    "FINETUNE_TASKS",
    "GLUE_TASKS",
    "ZERO_SHOT_SUITES",
    "BlimpResult",
    "FinetuneRecipe",
    "ParadigmScore",
    "ZeroShotResult",
    "blimp_accuracy",
    "classification_metrics",
    "evaluate_loss",
    "glue_average",
    "glue_scores",
    "majority_baseline",
    "not_above_majority",
    "read_glue_task",
    "read_task",
    "task_metrics",
    "zero_shot_accuracy",
]
