"""Dev/test loss: mean next-token cross-entropy over fixed windows of a split."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import PreTrainedModel

from trainers.config import DataConfig
from trainers.data import eval_windows, split_tokens
from trainers.errors import TrainerError
from trainers.model import load_model

__all__ = ["evaluate_loss", "mean_token_loss"]


@torch.no_grad()
def mean_token_loss(
    model: PreTrainedModel,
    windows: np.ndarray,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    autocast: contextlib.AbstractContextManager | None = None,
    progress: str | None = None,
) -> float:
    """Mean next-token CE (nats) over (N, L) windows, every predicted token weighted equally;
    progress: a bar on stderr named so, over the windows (None: no bar)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    bar = tqdm(
        total=len(windows),
        desc=progress,
        unit="window",
        file=sys.stderr,
        disable=progress is None,
        leave=False,
    )
    for start in range(0, len(windows), batch_size):
        input_ids = torch.from_numpy(windows[start : start + batch_size]).to(device)  # (B, L)
        with autocast or contextlib.nullcontext():
            logits = model(input_ids=input_ids).logits  # (B, L, V)
        loss = F.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.size(-1)),
            input_ids[:, 1:].reshape(-1),
            reduction="sum",
        )
        total += loss.item()
        count += input_ids[:, 1:].numel()
        bar.update(len(input_ids))
    bar.close()
    model.train(was_training)
    return total / count


def evaluate_loss(
    model_dir: Path, data: DataConfig, split: str = "dev", *, progress: bool = False
) -> float:
    """Mean per-token CE of a checkpoint on a split (capped by data.max_eval_tokens).

    Windows of data.seq_length at offset 0; exp() of it is the perplexity. progress: a bar
    on stderr over the windows.
    """
    if split not in ("dev", "test", "train"):
        raise TrainerError(f"split: {split!r} is not one of dev, test, train")
    model = load_model(Path(model_dir), what="checkpoint")
    tokens = split_tokens(data, split, tokenizer_dir=Path(model_dir))
    return mean_token_loss(
        model, eval_windows(tokens, data.seq_length), progress=f"{split} loss" if progress else None
    )
