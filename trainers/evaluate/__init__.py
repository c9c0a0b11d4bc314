"""Evaluation of trained checkpoints: BLiMP minimal pairs and dev/test loss."""

from trainers.evaluate.blimp import BlimpResult, ParadigmScore, blimp_accuracy
from trainers.evaluate.loss import evaluate_loss

__all__ = ["BlimpResult", "ParadigmScore", "blimp_accuracy", "evaluate_loss"]
