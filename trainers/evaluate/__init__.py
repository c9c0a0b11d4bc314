"""Evaluation of trained checkpoints: BLiMP minimal pairs, GLUE fine-tuning, dev/test loss."""

from trainers.evaluate.blimp import BlimpResult, ParadigmScore, blimp_accuracy
from trainers.evaluate.glue import classification_metrics, glue_scores, read_glue_task
from trainers.evaluate.loss import evaluate_loss

__all__ = [
    "BlimpResult",
    "ParadigmScore",
    "blimp_accuracy",
    "classification_metrics",
    "evaluate_loss",
    "glue_scores",
    "read_glue_task",
]
