"""trainers.losses.distillation_loss against direct reference computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from trainers.losses import IGNORE_INDEX, distillation_loss

B, L, V = 3, 7, 11


def logits_and_labels(seed: int, k: int, *, padded: bool) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(B, L, V, generator=generator, dtype=torch.float64) * 2
    teachers = [
        torch.randn(B, L, V, generator=generator, dtype=torch.float64) * 2 for _ in range(k)
    ]
    labels = torch.randint(0, V, (B, L), generator=generator)
    if padded:
        labels[0, 5:] = IGNORE_INDEX  # a right-padded row
        labels[2, 3:] = IGNORE_INDEX
    return student, teachers, labels


def reference(student, teachers, labels, alpha, temperature, ensemble):
    """Token by token, in float64, straight from the definitions."""
    ce_terms, kl_terms = [], []
    for b in range(B):
        for t in range(L):
            if labels[b, t] == IGNORE_INDEX:
                continue
            if t + 1 < L and labels[b, t + 1] != IGNORE_INDEX:
                ce_terms.append(-torch.log_softmax(student[b, t], -1)[labels[b, t + 1]].item())
            q = torch.softmax(student[b, t] / temperature, -1)
            if ensemble == "logits":
                p = torch.softmax(sum(z[b, t] for z in teachers) / len(teachers) / temperature, -1)
            else:
                p = sum(torch.softmax(z[b, t] / temperature, -1) for z in teachers) / len(teachers)
            kl_terms.append(sum(p[v] * math.log(p[v] / q[v]) for v in range(V)).item())
    ce = sum(ce_terms) / len(ce_terms)
    kl = temperature**2 * sum(kl_terms) / len(kl_terms)
    return alpha * ce + (1 - alpha) * kl, ce, kl


@pytest.mark.parametrize(
    ("alpha", "temperature", "k", "ensemble"),
    [
        (0.5, 1.0, 1, "logits"),
        (0.5, 2.0, 2, "logits"),
        (0.0, 0.5, 3, "logits"),
        (0.3, 4.0, 2, "probs"),
        (0.9, 1.0, 3, "probs"),
    ],
)
def test_loss_matches_reference(alpha: float, temperature: float, k: int, ensemble: str):
    student, teachers, labels = logits_and_labels(k, k, padded=True)
    got = distillation_loss(
        student, labels, teachers, alpha=alpha, temperature=temperature, ensemble=ensemble
    )
    want_loss, want_ce, want_kl = reference(student, teachers, labels, alpha, temperature, ensemble)
    assert got.loss.item() == pytest.approx(want_loss, abs=1e-6)
    assert got.ce.item() == pytest.approx(want_ce, abs=1e-6)
    assert got.kl is not None
    assert got.kl.item() == pytest.approx(want_kl, abs=1e-6)


def test_alpha_one_is_the_models_own_cross_entropy():
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    input_ids = torch.randint(0, 50, (2, 9))
    labels = input_ids.clone()
    labels[1, 6:] = IGNORE_INDEX
    output = model(input_ids=input_ids, labels=labels)
    teachers = [torch.randn(2, 9, 50)]
    got = distillation_loss(output.logits, labels, teachers, alpha=1.0, temperature=2.0)
    assert got.kl is None
    assert got.loss.item() == pytest.approx(output.loss.item(), abs=1e-6)
    no_teachers = distillation_loss(output.logits, labels, alpha=0.5)
    assert no_teachers.loss.item() == pytest.approx(output.loss.item(), abs=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_babyllama2_reduction_is_length_times_token_mean(temperature: float):
    student, teachers, labels = logits_and_labels(7, 2, padded=False)
    token_mean = distillation_loss(student, labels, teachers, alpha=0.0, temperature=temperature)
    batchmean = distillation_loss(
        student, labels, teachers, alpha=0.0, temperature=temperature, kl_reduction="babyllama2"
    )
    assert batchmean.kl.item() == pytest.approx(L * token_mean.kl.item(), rel=1e-9)
    # and it is what BabyLlama-2's code computes
    teacher_mean = torch.stack(teachers).mean(0)
    reference = F.kl_div(
        F.log_softmax(student / temperature, -1),
        F.softmax(teacher_mean / temperature, -1),
        reduction="batchmean",
    ) * (temperature**2)
    assert batchmean.kl.item() == pytest.approx(reference.item(), abs=1e-9)


def test_kl_is_zero_when_student_equals_the_teacher_and_gradient_flows():
    student, _, labels = logits_and_labels(1, 1, padded=True)
    student.requires_grad_(True)
    same = distillation_loss(student, labels, [student.detach()], alpha=0.0, temperature=3.0)
    assert same.kl.item() == pytest.approx(0.0, abs=1e-12)
    other = distillation_loss(student, labels, [torch.zeros_like(student)], alpha=0.5)
    other.loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
