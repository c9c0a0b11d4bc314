"""The frozen teacher ensemble a student distils from: K >= 1 trainers HF checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer

from trainers.data import tokenizer_fingerprint
from trainers.errors import TrainerError
from trainers.losses import TeacherHidden
from trainers.model import check_model_dir, load_model, to_device

__all__ = ["TeacherEnsemble", "check_teacher_dir"]


def check_teacher_dir(teacher_dir: Path, *, student_tokenizer: Tokenizer, seq_length: int) -> None:
    """Refuse a teacher the student cannot learn from, without loading its weights."""
    teacher_dir = check_model_dir(teacher_dir, what="teacher")
    tokenizer_file = teacher_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise TrainerError(
            f"teacher {teacher_dir}: no tokenizer.json; a teacher must ship the tokenizer "
            "it was trained with"
        )
    teacher_tokenizer = Tokenizer.from_file(str(tokenizer_file))
    if tokenizer_fingerprint(teacher_tokenizer) != tokenizer_fingerprint(student_tokenizer):
        raise TrainerError(
            f"teacher {teacher_dir}: its tokenizer (vocab {teacher_tokenizer.get_vocab_size()}) "
            f"differs from the student's (vocab {student_tokenizer.get_vocab_size()}); "
            "train teachers and student with the same data.corpus and data.vocab_size"
        )
    import json

    config = json.loads((teacher_dir / "config.json").read_text())
    if config.get("vocab_size") != student_tokenizer.get_vocab_size():
        raise TrainerError(
            f"teacher {teacher_dir}: model vocab {config.get('vocab_size')} differs from the "
            f"tokenizer's {student_tokenizer.get_vocab_size()}; retrain the teacher"
        )
    if config.get("max_position_embeddings", seq_length) < seq_length:
        raise TrainerError(
            f"data.seq_length: {seq_length} exceeds teacher {teacher_dir}'s "
            f"{config['max_position_embeddings']} positions; lower seq_length"
        )


class TeacherEnsemble:
    """K frozen teachers in eval mode; one call gives each teacher's hidden states (or logits).

    They compute no loss and keep no graph (no_grad rather than inference_mode: their
    outputs feed the student's autograd graph); on CUDA they run in bf16 (half the memory and
    time of fp32 for a forward pass whose output is only softened by a softmax).
    """

    def __init__(
        self,
        teacher_dirs: Sequence[Path],
        *,
        student_tokenizer: Tokenizer,
        seq_length: int,
        device: torch.device,
        compile: bool = False,
    ) -> None:
        if not teacher_dirs:
            raise TrainerError("teachers: give at least one teacher checkpoint dir")
        for teacher_dir in teacher_dirs:
            check_teacher_dir(
                teacher_dir, student_tokenizer=student_tokenizer, seq_length=seq_length
            )
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.teachers = []
        for teacher_dir in teacher_dirs:
            teacher = to_device(load_model(Path(teacher_dir), what="teacher", dtype=dtype), device)
            teacher.eval().requires_grad_(False)
            self.teachers.append(teacher)
        # compiled with the student, or the eager teachers dominate a compiled step
        self._forwards = [torch.compile(t) if compile else t for t in self.teachers]
        self._bodies = [torch.compile(t.model) if compile else t.model for t in self.teachers]

    def __len__(self) -> int:
        return len(self.teachers)

    @torch.no_grad()
    def logits(self, input_ids: torch.Tensor) -> list[torch.Tensor]:
        """Each teacher's logits, K tensors (B, L, V)."""
        return [forward(input_ids=input_ids).logits for forward in self._forwards]

    @torch.no_grad()
    def hidden_states(self, input_ids: torch.Tensor) -> list[TeacherHidden]:
        """Each teacher's final hidden states and lm_head, for the chunked loss to project.

        Skipping the lm_head here is what keeps K (B, L, V) logits from ever existing.
        """
        return [
            TeacherHidden(
                hidden=body(input_ids=input_ids).last_hidden_state,  # (B, L, H)
                lm_head_weight=teacher.lm_head.weight,  # (V, H)
            )
            for body, teacher in zip(self._bodies, self.teachers, strict=True)
        ]
