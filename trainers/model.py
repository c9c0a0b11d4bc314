"""LLaMA models from a preset or explicit sizes, and loading trainers' HF checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypeVar

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel
from transformers.utils import logging as hf_logging

from trainers.config import ModelConfig
from trainers.errors import TrainerError

__all__ = [
    "build_model",
    "check_model_dir",
    "count_parameters",
    "load_model",
    "model_weights_present",
    "to_device",
]

M = TypeVar("M", bound=PreTrainedModel)

log = logging.getLogger(__name__)
# transformers draws a bar per save/load; trainers shows its own progress instead.
hf_logging.disable_progress_bar()


def build_model(
    model: ModelConfig,
    *,
    vocab_size: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    seq_length: int,
    attention_dropout: float = 0.0,
) -> LlamaForCausalLM:
    """A freshly initialised LlamaForCausalLM (seed torch first for a reproducible init).

    attention_dropout applies in train() mode only (HF drops attention probabilities then).
    """
    model.check_seq_length(seq_length)
    sizes = model.sizes()
    max_positions = int(sizes["max_position_embeddings"])
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=int(sizes["hidden_size"]),
        intermediate_size=int(sizes["intermediate_size"]),
        num_hidden_layers=int(sizes["num_layers"]),
        num_attention_heads=int(sizes["num_heads"]),
        num_key_value_heads=int(sizes["num_kv_heads"]),
        max_position_embeddings=max_positions,
        tie_word_embeddings=bool(sizes["tie_embeddings"]),
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        attention_dropout=attention_dropout,
        use_cache=False,
    )
    student = LlamaForCausalLM(config)
    log.info("model: %s parameters", f"{count_parameters(student):,}")
    return student


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())


def model_weights_present(model_dir: Path) -> bool:
    """Whether a folder holds HF weights (safetensors or a PyTorch bin)."""
    return any(Path(model_dir).glob("*.safetensors")) or any(
        Path(model_dir).glob("pytorch_model*.bin")
    )


def check_model_dir(model_dir: Path, *, what: str) -> Path:
    """The one check that a folder is a trainers checkpoint (config.json and HF weights),
    before anything loads it; `what` names it in the error (e.g. "teacher", "GLUE model")."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise TrainerError(f"{what} {model_dir}: no such directory")
    if not (model_dir / "config.json").is_file() or not model_weights_present(model_dir):
        raise TrainerError(
            f"{what} {model_dir}: no model weights (config.json + *.safetensors); "
            "pass a checkpoint folder written by trainers (its final/ or an epoch_N/)"
        )
    return model_dir


def to_device(model: M, device: torch.device | str) -> M:
    """`model.to(device)`, typed: transformers wraps PreTrainedModel.to with functools.wraps,
    whose type stub makes mypy read the device as the method's `self`."""
    moved: M = model.to(device)  # type: ignore[arg-type]
    return moved


def load_model(
    model_dir: Path, *, what: str, dtype: torch.dtype = torch.float32
) -> LlamaForCausalLM:
    """A trainers checkpoint as LlamaForCausalLM; `what` names it in errors (e.g. "teacher")."""
    model_dir = check_model_dir(model_dir, what=what)
    try:
        return LlamaForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
    except (OSError, ValueError) as exc:
        raise TrainerError(f"{what} {model_dir}: cannot load the model ({exc})") from None
