"""What a trial cost: device-seconds, tokens trained and training FLOPs (store revision 0007).

The recorder writes them when a trial finishes; `read_trials` computes them on read for rows
written before (from the same timings, resources and metrics), so old and new stores agree.

FLOPs use the standard count (Kaplan et al. 2020): a trained token costs 6 N (forward 2 N,
backward 4 N) for the model being trained with N parameters, each teacher's forward on it
2 N_teacher, and every token the model evaluates (dev and test loss) 2 N. So a student of
K teachers of its own size costs (6 + 2 K) / 6 = (3 + K) / 3 of a teacher's step; the teachers'
forward passes on the tokens they evaluate (the dev distillation loss) cost 2 N_teacher each.
BLiMP and GLUE scoring are not counted (a fixed cost per trial, the same for every role).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "COST_COLUMNS",
    "EVAL_TOKENS",
    "NUM_PARAMETERS",
    "TEACHER_EVAL_TOKENS",
    "TEACHER_PARAMETERS",
    "TOKENS_TRAINED",
    "TrialCost",
    "device_seconds",
    "held_devices",
    "llama_parameters",
    "training_flops",
    "trial_cost",
]

COST_COLUMNS = ["device_seconds", "tokens_trained", "train_flops"]
# the metrics a trial reports every epoch (trainers.recipe) that its cost is computed from
TOKENS_TRAINED = "tokens_seen"
"""Training tokens the model has trained on so far (cumulative over epochs and resumes)."""
NUM_PARAMETERS = "num_parameters"
TEACHER_PARAMETERS = "teacher_parameters"
"""The parameters of the teachers the trial ran (their sum; 0 with none)."""
EVAL_TOKENS = "eval_tokens"
"""Tokens the model evaluated so far (dev loss at every evaluation, test loss once)."""
TEACHER_EVAL_TOKENS = "teacher_eval_tokens"
"""Tokens each teacher evaluated (the dev distillation loss, checkpoint_metric's option)."""


@dataclass(frozen=True)
class TrialCost:
    device_seconds: float | None
    tokens_trained: int | None
    train_flops: float | None


def held_devices(resources: Mapping[str, Any] | None) -> float | None:
    """The devices a trial held: its GPUs when it held any, else its CPU cores."""
    if not resources:
        return None
    gpu = float(resources.get("gpu") or 0.0)
    return gpu if gpu > 0 else float(resources.get("cpu") or 0.0) or None


def device_seconds(
    started_at: datetime | None, ended_at: datetime | None, resources: Mapping[str, Any] | None
) -> float | None:
    """Wall time from the trial's start to its end times the devices it held."""
    devices = held_devices(resources)
    if started_at is None or ended_at is None or devices is None:
        return None
    return max((ended_at - started_at).total_seconds(), 0.0) * devices


def training_flops(
    *,
    parameters: float,
    tokens_trained: float,
    teacher_parameters: float = 0.0,
    eval_tokens: float = 0.0,
    teacher_eval_tokens: float = 0.0,
) -> float:
    """6 N per trained token, 2 N_teacher per trained token per teacher, 2 N per evaluated
    token (2 N_teacher per teacher for the tokens the teachers evaluated)."""
    training = (6.0 * parameters + 2.0 * teacher_parameters) * tokens_trained
    return (
        training + 2.0 * parameters * eval_tokens + 2.0 * teacher_parameters * teacher_eval_tokens
    )


def llama_parameters(recipe: Mapping[str, Any]) -> int | None:
    """A LLaMA's parameter count from a stored recipe config (`model` sizes, `data.vocab_size`):
    for rows written before trials reported `num_parameters`. None when it names no valid
    model. The configured vocab is the tokenizer's on a corpus that fills it (sweep.yaml's)."""
    from trainers.config import ModelConfig
    from trainers.errors import TrainerError

    if not recipe or not isinstance(recipe.get("model"), Mapping):
        return None
    try:
        sizes = ModelConfig.model_validate(recipe["model"]).sizes()
    except (ValueError, TrainerError):  # pydantic's ValidationError is a ValueError
        return None
    vocab = int((recipe.get("data") or {}).get("vocab_size", 0))
    hidden, inter = int(sizes["hidden_size"]), int(sizes["intermediate_size"])
    heads, kv_heads = int(sizes["num_heads"]), int(sizes["num_kv_heads"])
    kv = hidden // heads * kv_heads  # grouped-query attention: K and V are narrower
    # q, o: H x H; k, v: H x kv; SwiGLU gate, up, down: 3 H x I; two RMSNorm gains
    block = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inter + 2 * hidden
    embeddings = vocab * hidden * (1 if sizes["tie_embeddings"] else 2)
    return embeddings + int(sizes["num_layers"]) * block + hidden  # + the final norm


def trial_cost(
    *,
    started_at: datetime | None,
    ended_at: datetime | None,
    resources: Mapping[str, Any] | None,
    metrics: Mapping[str, Any],
    parameters: float | None = None,
    teacher_parameters: float | None = None,
) -> TrialCost:
    """A trial's cost from its timings, resources and last metrics; `parameters` and
    `teacher_parameters` stand in where the metrics lack them (older rows)."""
    tokens = _number(metrics.get(TOKENS_TRAINED))
    n = _number(metrics.get(NUM_PARAMETERS), parameters)
    n_teachers = _number(metrics.get(TEACHER_PARAMETERS), teacher_parameters)
    evaluated = _number(metrics.get(EVAL_TOKENS), 0.0)
    teachers_evaluated = _number(metrics.get(TEACHER_EVAL_TOKENS), 0.0)
    flops = None
    if tokens is not None and n is not None and n_teachers is not None:
        flops = training_flops(
            parameters=n,
            tokens_trained=tokens,
            teacher_parameters=n_teachers,
            eval_tokens=evaluated or 0.0,
            teacher_eval_tokens=teachers_evaluated or 0.0,
        )
    return TrialCost(
        device_seconds=device_seconds(started_at, ended_at, resources),
        tokens_trained=None if tokens is None else int(tokens),
        train_flops=flops,
    )


def _number(*values: Any) -> float | None:
    """The first finite number among values, else None."""
    for value in values:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None
