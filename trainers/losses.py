"""The distillation loss: alpha * CE + (1 - alpha) * T^2 * KL(teacher ensemble || student).

Conventions follow Hugging Face causal LMs: logits are (B, L, V) for input ids (B, L) and
`labels` are the input ids with -100 at padding; CE predicts token t+1 from position t.
The KL is taken at every non-padding position (including the last, which has no CE
target), as in BabyLlama-2, which distils on the teachers' full output.

Two implementations of the same loss:

- `distillation_loss` takes full (B, L, V) logits: the definition, kept as the test oracle.
- `chunked_distillation_loss` (what training runs) takes the student's final hidden states
  and lm_head weight, and each teacher's hidden states and lm_head weight, and goes over
  the B*L positions a chunk at a time (a fused linear + CE/KL, as Liger's fused linear
  cross-entropy/JSD and torchtune's chunked CE): no (B, L, V) tensor of the student, a
  teacher or the ensemble ever exists, only a few (chunk, V) buffers at once. It computes
  the gradient analytically during the forward pass (softmax minus target), so backward
  keeps no per-chunk activation alive either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

__all__ = [
    "IGNORE_INDEX",
    "DistillationLoss",
    "TeacherHidden",
    "chunked_distillation_loss",
    "distillation_loss",
    "teacher_log_probs",
]

IGNORE_INDEX = -100
CHUNK_ELEMENTS = {"cpu": 2**22, "cuda": 2**24}
"""Default chunk: about this many (chunk, V) elements per buffer, 16 MiB fp32 on CPU; on
CUDA 64 MiB, so a step launches few enough kernels per chunk to stay matmul-bound."""


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


@dataclass(frozen=True)
class TeacherHidden:
    """One teacher's output before its lm_head: logits = hidden @ lm_head_weight.T."""

    hidden: torch.Tensor
    """(B, L, H) final (normed) hidden states, computed without grad."""
    lm_head_weight: torch.Tensor
    """(V, H) the teacher's output projection."""


def chunked_distillation_loss(
    student_hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    labels: torch.Tensor,
    teachers: Sequence[TeacherHidden | torch.Tensor] = (),
    *,
    alpha: float = 1.0,
    temperature: float = 1.0,
    ensemble: Literal["logits", "probs"] = "logits",
    kl_reduction: Literal["token_mean", "babyllama2"] = "token_mean",
    chunk_size: int | None = None,
) -> DistillationLoss:
    """`distillation_loss` of logits = student_hidden @ lm_head_weight.T, chunk by chunk.

    student_hidden: (B, L, H); lm_head_weight: (V, H); labels: (B, L) with -100 at padding;
    teachers: K TeacherHidden (or full (B, L, V) logits, sliced per chunk). chunk_size is
    positions (rows of the flattened B*L) per chunk; None: CHUNK_ELEMENTS[device] / V.

    Same value and gradients (to student_hidden and lm_head_weight) as `distillation_loss`;
    `ce` and `kl` come back detached (they are reported, not backpropagated). Under CUDA
    autocast the two matmuls per chunk run in bf16, like the lm_head Linear they replace;
    the softmaxes are at least fp32.
    """
    batch, length, _ = student_hidden.shape
    vocab = lm_head_weight.size(0)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size: {chunk_size} must be >= 1 (or None for the default)")
    elements = CHUNK_ELEMENTS.get(student_hidden.device.type, CHUNK_ELEMENTS["cpu"])
    rows = chunk_size or max(1, elements // vocab)
    use_kl = alpha < 1.0 and len(teachers) > 0
    valid = labels != IGNORE_INDEX  # (B, L)
    # CE at position t predicts token t+1; the last position has no target
    targets = torch.full_like(labels, IGNORE_INDEX)
    targets[:, :-1] = labels[:, 1:]
    has_target = targets != IGNORE_INDEX
    # per-position weights of the two means, in the softmaxes' precision
    accumulate = torch.promote_types(student_hidden.dtype, torch.float32)
    ce_weight = has_target.to(accumulate) / has_target.sum().clamp(min=1)  # (B, L)
    if kl_reduction == "babyllama2":
        kl_weight = torch.full(labels.shape, 1.0 / batch, dtype=accumulate, device=labels.device)
    else:
        kl_weight = valid.to(accumulate) / valid.sum().clamp(min=1)
    loss, ce, kl = _ChunkedDistillation.apply(
        student_hidden,
        lm_head_weight,
        targets.reshape(-1).clamp(min=0),  # (B*L,)
        ce_weight.reshape(-1),
        kl_weight.reshape(-1),
        list(teachers) if use_kl else [],
        _LossOptions(
            alpha=alpha if use_kl else 1.0,
            temperature=temperature,
            ensemble=ensemble,
            chunk_rows=rows,
            sequence_shape=(batch, length),
        ),
    )
    if not use_kl:
        return DistillationLoss(loss=loss, ce=ce, kl=None)
    return DistillationLoss(loss=loss, ce=ce, kl=kl)


@dataclass(frozen=True)
class _LossOptions:
    alpha: float
    temperature: float
    ensemble: Literal["logits", "probs"]
    chunk_rows: int
    sequence_shape: tuple[int, int]


class _ChunkedDistillation(torch.autograd.Function):
    """Forward computes the loss and its gradients chunk by chunk; backward only scales them.

    Per row (position) with student logits z, q_T = softmax(z / T), teacher ensemble p:
    d CE / dz = softmax(z) - onehot(target); d KL / dz = (q_T * sum(p) - p) / T.
    """

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        ce_weight: torch.Tensor,
        kl_weight: torch.Tensor,
        teachers: list[TeacherHidden | torch.Tensor],
        options: _LossOptions,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        alpha, temperature = options.alpha, options.temperature
        need_hidden_grad, need_weight_grad = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        hidden_rows = hidden.reshape(-1, hidden.size(-1))  # (B*L, H)
        accumulate = ce_weight.dtype
        grad_hidden = torch.empty_like(hidden_rows) if need_hidden_grad else None
        grad_weight = torch.zeros_like(weight) if need_weight_grad else None
        ce_sum = torch.zeros((), dtype=accumulate, device=hidden.device)
        kl_sum = torch.zeros((), dtype=accumulate, device=hidden.device)
        for start in range(0, hidden_rows.size(0), options.chunk_rows):
            span = slice(start, start + options.chunk_rows)
            hidden_chunk = hidden_rows[span]  # (c, H)
            target = targets[span].unsqueeze(-1)  # (c, 1)
            ce_coef = alpha * ce_weight[span].unsqueeze(-1)  # (c, 1)
            if teachers:  # first, so their buffers are gone before the student's exist
                teacher_p, neg_entropy = _ensemble_chunk(teachers, span, options, accumulate)
            logits = F.linear(hidden_chunk, weight).to(accumulate)  # (c, V)
            log_probs = F.log_softmax(logits, dim=-1)
            ce_sum -= (log_probs.gather(-1, target) * ce_weight[span].unsqueeze(-1)).sum()
            # d loss / d logits = alpha w_ce (softmax - onehot) + (1 - alpha) T w_kl (q_T sum(p) - p),
            # built in place in the log-probs' buffer: at most four (c, V) buffers live at once
            if teachers:
                kl_w = kl_weight[span].unsqueeze(-1)  # (c, 1)
                kl_coef = (1.0 - alpha) * temperature * kl_w  # T^2 (KL scale) / T (softmax)
                q_coef = kl_coef * teacher_p.sum(-1, keepdim=True)
                if temperature == 1.0:  # q_T is the CE's softmax: one pass over the vocab saved
                    kl_rows = neg_entropy - _row_dot(teacher_p, log_probs, scratch=logits)  # (c,)
                    del logits
                    grad_logits = log_probs.exp_().mul_(ce_coef + q_coef)
                else:
                    student_logp = F.log_softmax(logits.div_(temperature), dim=-1)
                    kl_rows = neg_entropy - _row_dot(teacher_p, student_logp, scratch=logits)
                    del logits
                    grad_logits = log_probs.exp_().mul_(ce_coef)
                    grad_logits.add_(student_logp.exp_().mul_(q_coef))
                    del student_logp
                grad_logits.addcmul_(teacher_p, kl_coef, value=-1.0)
                kl_sum += (kl_rows * kl_w.squeeze(-1)).sum()
                del teacher_p
            else:
                del logits
                grad_logits = log_probs.exp_().mul_(ce_coef)
            grad_logits.scatter_add_(-1, target, -ce_coef)
            del log_probs
            if grad_hidden is not None:
                grad_hidden[span] = grad_logits.to(weight.dtype) @ weight
            if grad_weight is not None:
                grad_weight += grad_logits.t().to(hidden_chunk.dtype) @ hidden_chunk
        ce = ce_sum
        kl = kl_sum * temperature**2
        loss = alpha * ce + (1.0 - alpha) * kl if teachers else ce.clone()
        ctx.save_for_backward(
            grad_hidden.view_as(hidden) if grad_hidden is not None else None,
            grad_weight,
        )
        ctx.mark_non_differentiable(ce, kl)
        return loss, ce, kl

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, grad_loss: torch.Tensor, *_: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_loss.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = grad_weight * grad_loss.to(grad_weight.dtype)
        return grad_hidden, grad_weight, None, None, None, None, None


def _ensemble_chunk(
    teachers: list[TeacherHidden | torch.Tensor],
    span: slice,
    options: _LossOptions,
    accumulate: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ensemble's tempered distribution p over a chunk, (c, V), and sum(p log p), (c,).

    `teacher_log_probs` for a chunk, one teacher at a time: at most three (c, V) buffers.
    """
    k, temperature = len(teachers), options.temperature
    log_p: torch.Tensor | None = None
    for teacher in teachers:
        logits = _teacher_chunk(teacher, span, options.sequence_shape)  # (c, V)
        # a TeacherHidden's chunk is a fresh buffer; given logits are the caller's: copy them
        owned = isinstance(teacher, TeacherHidden)
        if options.ensemble == "logits":
            if log_p is None:
                log_p = logits.to(accumulate, copy=not owned)  # the running sum of logits
            else:
                log_p.add_(logits)
        else:
            teacher_log_p = F.log_softmax(logits.to(accumulate) / temperature, dim=-1)
            del logits
            log_p = (
                teacher_log_p if log_p is None else torch.logaddexp(log_p, teacher_log_p, out=log_p)
            )
    assert log_p is not None
    if options.ensemble == "logits":
        log_p = F.log_softmax(log_p.mul_(1.0 / (k * temperature)), dim=-1)
    else:
        log_p.sub_(math.log(k))  # log of the mean probability
    p = log_p.exp()
    return p, _row_dot(p, log_p, scratch=log_p)


def _row_dot(a: torch.Tensor, b: torch.Tensor, *, scratch: torch.Tensor) -> torch.Tensor:
    """sum(a * b, -1) for (c, V) tensors, the products written into `scratch` (a (c, V)
    buffer the caller is done with, possibly `b` itself): no new (c, V) temporary.

    torch.sum's cascade (CPU) or tree (CUDA) summation keeps the rows' fp32 accuracy; a
    bmm's running sum loses it: with peaked teachers (entropy and cross-entropy nearly
    equal, the KL their small difference) it put the KL 1.6e-5 relative off fp64.
    """
    return torch.mul(a, b, out=scratch).sum(-1)  # (c,)


def _teacher_chunk(
    teacher: TeacherHidden | torch.Tensor, span: slice, sequence_shape: tuple[int, int]
) -> torch.Tensor:
    """One teacher's logits for a chunk of flattened positions, (c, V)."""
    if isinstance(teacher, TeacherHidden):
        hidden = teacher.hidden.reshape(-1, teacher.hidden.size(-1))  # (B*L, H_teacher)
        return F.linear(hidden[span], teacher.lm_head_weight)
    if teacher.shape[:2] != sequence_shape:
        raise ValueError(f"teacher logits {tuple(teacher.shape)} do not match {sequence_shape}")
    return teacher.reshape(-1, teacher.size(-1))[span]
