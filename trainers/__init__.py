"""Pure PyTorch + transformers training of BabyLlama-style teachers and distilled students.

`import trainers` and `import trainers.config` stay light (no torch); the heavy names
below are imported on first use.

    from trainers import train, blimp_accuracy
    from trainers.config import load_recipe_config
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainers.errors import NonFiniteLossError, TrainerError

if TYPE_CHECKING:
    from trainers.config import DataConfig, ModelConfig, RecipeConfig, TrainingConfig
    from trainers.data import PreparedCorpus, prepare_corpus
    from trainers.evaluate import BlimpResult, ParadigmScore, blimp_accuracy, evaluate_loss
    from trainers.losses import chunked_distillation_loss, distillation_loss
    from trainers.model import count_parameters
    from trainers.recipe import ReportFn, TrainResult, train

__all__ = [
    "BlimpResult",
    "DataConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "ParadigmScore",
    "PreparedCorpus",
    "RecipeConfig",
    "ReportFn",
    "TrainResult",
    "TrainerError",
    "TrainingConfig",
    "blimp_accuracy",
    "chunked_distillation_loss",
    "count_parameters",
    "distillation_loss",
    "evaluate_loss",
    "prepare_corpus",
    "train",
]

_LAZY = {
    "DataConfig": "trainers.config",
    "ModelConfig": "trainers.config",
    "RecipeConfig": "trainers.config",
    "TrainingConfig": "trainers.config",
    "PreparedCorpus": "trainers.data",
    "prepare_corpus": "trainers.data",
    "BlimpResult": "trainers.evaluate",
    "ParadigmScore": "trainers.evaluate",
    "blimp_accuracy": "trainers.evaluate",
    "evaluate_loss": "trainers.evaluate",
    "distillation_loss": "trainers.losses",
    "chunked_distillation_loss": "trainers.losses",
    "count_parameters": "trainers.model",
    "ReportFn": "trainers.recipe",
    "TrainResult": "trainers.recipe",
    "train": "trainers.recipe",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")
