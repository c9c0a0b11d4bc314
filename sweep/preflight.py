"""What `sweep validate` says beyond "valid": warnings about where a valid file cannot run
here, and what the study will cost (trials, epochs, tokens, compute) before any is spent.

Warnings never fail validation: a paper-scale file is meant for a cluster, and `/shared` or a
GPU may exist there though not on the machine that validates it.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sweep.config import (
    BaselinesStage,
    Categorical,
    EnsembleStage,
    IntRange,
    LogNormal,
    QLogNormal,
    ReferenceStage,
    RepeatsStage,
    SearchStage,
    StudentsStage,
    SweepConfig,
    TrialStage,
    Uniform,
)

__all__ = ["StagePlan", "plan_stages", "summary_lines", "warnings"]


def warnings(config: SweepConfig) -> list[str]:
    """One line per thing in a valid config that will not work on this machine as it is."""
    out: list[str] = []
    wants_gpu = config.training.device == "cuda" or any(
        isinstance(s, TrialStage) and s.resources.gpu > 0 for s in config.stages.values()
    )
    if wants_gpu and not _gpu_here():
        out.append(
            "training.device / resources.gpu: the file asks for a GPU and this machine has none "
            "(no nvidia-smi); `sweep run` here would wait for GPUs Ray cannot offer"
        )
    for field, value, instead in (
        ("output_dir", config.output_dir, "pass --output-dir or set $SWEEP_OUTPUT_DIR"),
        ("data.cache_dir", _cache(config), "set $SWEEP_CACHE_DIR"),
    ):
        missing = _missing_root(value)
        if missing:
            out.append(
                f"{field}: {value} is under {missing}, which does not exist here; "
                f"mount it, or {instead}"
            )
    storage = config.storage or ""
    if storage.startswith("sqlite:///") and config.source is not None:
        database = Path(storage.removeprefix("sqlite:///"))
        if database.parent.name == "examples":
            out.append(
                f"storage: none given, so a SQLite file inside examples/ ({database.name}); "
                "pass --storage or set $SWEEP_STORAGE_URL (PostgreSQL on a cluster)"
            )
    return out


@dataclass(frozen=True)
class StagePlan:
    name: str
    kind: str
    trials: int
    epochs: float  # a stage that samples its epochs: the mean of their prior
    tokens_per_trial: int  # training tokens over all its epochs
    teachers: int  # teacher forward passes per student token (the ensemble's K)
    sampled_epochs: bool = False


def plan_stages(config: SweepConfig) -> list[StagePlan]:
    """Trials, epochs and tokens each declared stage will run (before early stopping)."""
    plans: list[StagePlan] = []
    kinds = {name: stage.kind for name, stage in config.stages.items()}
    ks = {n: s.k for n, s in config.stages.items() if isinstance(s, EnsembleStage)}
    before: list[str] = []
    per_epoch = config.data.max_train_tokens or 0
    for name, stage in config.stages.items():
        if isinstance(stage, TrialStage):
            trials, scale, teachers = _trials(stage, before, kinds), 1, 0
            if isinstance(stage, ReferenceStage):
                scale = stage.data_scale
            if isinstance(stage, StudentsStage):
                ensembles = [stage.ensemble] if stage.ensemble else [n for n in before if n in ks]
                teachers = ks.get(ensembles[-1], 0) if ensembles else 0
            sampled = _mean_sampled_epochs(stage)
            epochs = stage.epochs if sampled is None else sampled
            plans.append(
                StagePlan(
                    name,
                    str(stage.kind),
                    trials,
                    epochs,
                    round(epochs * per_epoch * scale),
                    teachers,
                    sampled_epochs=sampled is not None,
                )
            )
        before.append(name)
    return plans


def summary_lines(config: SweepConfig) -> list[str]:
    """The study's size, a stage a line, then the totals and the compute (6 N D FLOPs)."""
    params = _parameters(config)
    plans = plan_stages(config)
    lines = [f"# the study: {params / 1e6:.2f}M-parameter model, per stage before early stopping"]
    flops = 0.0
    for p in plans:
        # training 6 N D, and the teachers' forward passes 2 N D each for a student
        stage_flops = p.trials * p.tokens_per_trial * params * (6 + 2 * p.teachers)
        flops += stage_flops
        size = (
            f"{_si(p.tokens_per_trial)} tokens a trial, {stage_flops:.2g} FLOPs"
            if p.tokens_per_trial
            else f"the whole corpus each epoch, {params * (6 + 2 * p.teachers):.2g} FLOPs a token"
        )
        each = (
            f"~{p.epochs:.3g} epochs (its prior's mean)"
            if p.sampled_epochs
            else f"{p.epochs:g} epoch{'' if p.epochs == 1 else 's'}"
        )
        lines.append(f"#   {p.name:<14} {p.kind:<10} {p.trials:>3} trials x {each}, {size}")
    trials = sum(p.trials for p in plans)
    tokens = sum(p.trials * p.tokens_per_trial for p in plans)
    if config.data.max_train_tokens:
        lines.append(
            f"# total: {trials} trials, {_si(tokens)} training tokens, {flops:.2g} FLOPs "
            "(training and teacher passes; BLiMP/GLUE evaluation not counted)"
        )
    else:
        epochs = sum(p.trials * p.epochs for p in plans)
        lines.append(
            f"# total: {trials} trials, {epochs:.4g} epochs of the whole corpus "
            "(data.max_train_tokens is null): its tokens times the FLOPs a token above"
        )
    return lines


def _trials(stage: TrialStage, before: list[str], kinds: dict) -> int:
    if isinstance(stage, SearchStage):
        return stage.trials
    if isinstance(stage, BaselinesStage):
        students = stage.students or [n for n in before if kinds[n] == "students"]
        return stage.top_n * len(students)
    if isinstance(stage, RepeatsStage):
        sources = stage.sources or [n for n in before if kinds[n] in ("teachers", "students")]
        # a students source repeats its alpha=1 control too
        return _seeds(stage) * sum(2 if kinds.get(s) == "students" else 1 for s in sources)
    if isinstance(stage, ReferenceStage):
        return _seeds(stage)
    return 0


def _seeds(stage: RepeatsStage | ReferenceStage) -> int:
    """Seeds a stage runs; under `seeds: auto`, the most it may run (max_seeds)."""
    if isinstance(stage.seeds, int):
        return stage.seeds
    return int(getattr(stage, "max_seeds", None) or 0)


def _parameters(config: SweepConfig) -> int:
    """LLaMA parameter count from the sizes (embeddings, attention with grouped KV, SwiGLU MLP,
    RMSNorms, the LM head unless tied)."""
    s = config.model.sizes()
    h, i, layers = int(s["hidden_size"]), int(s["intermediate_size"]), int(s["num_layers"])
    kv = h // int(s["num_heads"]) * int(s["num_kv_heads"])
    vocab = config.data.vocab_size
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h
    return vocab * h * (1 if s["tie_embeddings"] else 2) + layers * per_layer + h


def _gpu_here() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/dev/nvidia0").exists()


def _cache(config: SweepConfig) -> str | None:
    cache = config.data.cache_dir
    return str(cache) if cache is not None else None


def _missing_root(value: str | None) -> str | None:
    """The top folder of an absolute local path when it does not exist (`/shared`)."""
    if not value or "://" in value or not os.path.isabs(value):
        return None
    parts = Path(value).parts
    top = Path(*parts[:2]) if len(parts) > 1 else None
    return str(top) if top is not None and not top.exists() else None


def _si(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def _mean_sampled_epochs(stage: TrialStage) -> float | None:
    """The mean epochs of a search that samples them (None: it trains stage.epochs)."""
    param = stage.space.get("epochs") if isinstance(stage, SearchStage) else None
    if isinstance(param, LogNormal | QLogNormal):
        from sweep.priors import prior_mean

        return prior_mean(param)
    if isinstance(param, IntRange):
        values = range(param.low, param.high + 1, param.step)
        if param.log:  # Optuna: log-uniform over [low - 0.5, high + 0.5], then rounded
            edges = [math.log(v + 0.5) - math.log(v - 0.5 or 0.5) for v in values]
            return sum(v * w for v, w in zip(values, edges, strict=True)) / sum(edges)
        return sum(values) / len(values)
    if isinstance(param, Uniform):
        return (param.low + param.high) / 2
    if isinstance(param, Categorical):
        numbers = [float(c) for c in param.choices if not isinstance(c, bool | str)]
        return sum(numbers) / len(numbers) if numbers else None
    return None
