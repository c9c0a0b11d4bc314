"""The distillation loss: alpha * CE + (1 - alpha) * T^2 * KL(teacher ensemble || student).

Conventions follow Hugging Face causal LMs: logits are (B, L, V) for input ids (B, L) and
`labels` are the input ids with -100 at padding; CE predicts token t+1 from position t.
The KL is taken at every non-padding position (including the last, which has no CE
target), as in BabyLlama-2, which distils on the teachers' full output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["IGNORE_INDEX", "DistillationLoss", "distillation_loss", "teacher_log_probs"]

IGNORE_INDEX = -100


@dataclass
class DistillationLoss:
    """The loss to backpropagate and its two parts (kl is None without teachers)."""

    loss: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor | None


@torch.no_grad()
def teacher_log_probs(
    teacher_logits: Sequence[torch.Tensor],
    temperature: float,
    ensemble: Literal["logits", "probs"] = "logits",
) -> torch.Tensor:
    """The ensemble's tempered log-distribution, (B, L, V), at least float32.

    logits: log_softmax(mean_k z_k / T) (BabyLlama-2); probs: log(mean_k softmax(z_k / T)).
    """
    k = len(teacher_logits)
    if ensemble == "logits":
        # in place: one (B, L, V) buffer however many teachers
        summed = _at_least_fp32(teacher_logits[0]).clone()
        for z in teacher_logits[1:]:
            summed.add_(z)
        return F.log_softmax(summed.mul_(1.0 / (k * temperature)), dim=-1)
    stacked = torch.stack([_at_least_fp32(z) for z in teacher_logits])  # (K, B, L, V)
    log_probs = F.log_softmax(stacked.div_(temperature), dim=-1)
    return torch.logsumexp(log_probs, dim=0) - math.log(k)  # log of the mean probability


def _at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    # bf16 logits lose too much in a softmax over the vocab; fp64 (tests) stays fp64
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def distillation_loss(
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: Sequence[torch.Tensor] = (),
    *,
    alpha: float = 1.0,
    temperature: float = 1.0,
    ensemble: Literal["logits", "probs"] = "logits",
    kl_reduction: Literal["token_mean", "babyllama2"] = "token_mean",
) -> DistillationLoss:
    """alpha * CE + (1 - alpha) * T^2 * KL(p_teachers || p_student), per non-padding token.

    student_logits: (B, L, V); labels: (B, L) ids with -100 at padding; teacher_logits: K
    tensors (B, L, V) (none, or alpha == 1, gives plain CE).

    kl_reduction="babyllama2" reproduces the reference code's
    `KLDivLoss(reduction="batchmean")` on (B, L, V) logits: it sums the KL over all B*L
    positions (padding included) and divides by B only, so its KL is L times the
    per-token mean on unpadded batches. A compatibility option, not a default.
    """
    logits = _at_least_fp32(student_logits)
    log_probs = F.log_softmax(logits, dim=-1)  # (B, L, V)
    ce = _next_token_ce(log_probs, labels)
    if alpha >= 1.0 or not teacher_logits:
        return DistillationLoss(loss=ce, ce=ce, kl=None)

    teacher_logp = teacher_log_probs(teacher_logits, temperature, ensemble)  # (B, L, V)
    with torch.no_grad():
        teacher_p = teacher_logp.exp()
        neg_entropy = (teacher_p * teacher_logp).sum(-1)  # (B, L), constant for the student
    # at T = 1 the CE's log-softmax serves the KL too: one pass over the vocab saved
    student_logp = log_probs if temperature == 1.0 else F.log_softmax(logits / temperature, -1)
    kl_per_position = neg_entropy - (teacher_p * student_logp).sum(-1)  # (B, L)
    if kl_reduction == "babyllama2":
        kl = kl_per_position.sum() / kl_per_position.size(0)
    else:
        mask = labels != IGNORE_INDEX  # (B, L)
        kl = (kl_per_position * mask).sum() / mask.sum().clamp(min=1)
    kl = kl * temperature**2
    return DistillationLoss(loss=alpha * ce + (1.0 - alpha) * kl, ce=ce, kl=kl)


def _next_token_ce(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean -log p(token t+1 | ..t) over non-padding targets (HF's causal-LM shift)."""
    targets = labels[:, 1:]  # (B, L-1)
    valid = targets != IGNORE_INDEX
    # gather reads the (B, L-1, V) slice in place; cross_entropy would copy it
    picked = log_probs[:, :-1].gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * valid).sum() / valid.sum().clamp(min=1)
