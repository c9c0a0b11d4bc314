"""GLUE fine-tuning evaluation: a checkpoint plus a classification head on MRPC and RTE.

Each task fine-tunes a fresh copy of the checkpoint as LlamaForSequenceClassification
(a linear head on the last non-pad token) with AdamW on the task's train split, then
scores the dev split: accuracy, and for MRPC also F1 of the paraphrase class (label 1).
A pair is encoded as `<s> text_a </s> text_b`, the `<s>` matching how pretraining starts
every document; seeded init and shuffling make two CPU runs identical.

Example::

    scores = glue_scores(Path("runs/teacher/final"), Path("../shared/data/glue"), epochs=3)
    print(scores["mrpc"]["accuracy"], scores["mrpc"]["f1"], scores["rte"]["accuracy"])
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import LlamaForSequenceClassification, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from trainers.data import load_tokenizer
from trainers.errors import TrainerError
from trainers.model import check_model_dir, to_device

__all__ = [
    "GLUE_TASKS",
    "GlueExample",
    "classification_metrics",
    "finetune_and_predict",
    "glue_scores",
    "read_glue_task",
]


@dataclass(frozen=True)
class GlueExample:
    """One sentence pair and its gold label (MRPC: 1 = paraphrase; RTE: 1 = not_entailment)."""

    text_a: str
    text_b: str
    label: int


@dataclass(frozen=True)
class _TaskFormat:
    folder: str
    text_a: str
    text_b: str
    label: str
    labels: dict[str, int]
    """Label as written in the file -> class id (GLUE's own numbering)."""
    f1: bool
    """Whether the task reports F1 of class 1 next to accuracy."""


_FORMATS: dict[str, _TaskFormat] = {
    "mrpc": _TaskFormat("MRPC", "#1 String", "#2 String", "Quality", {"0": 0, "1": 1}, f1=True),
    "rte": _TaskFormat(
        "RTE",
        "sentence1",
        "sentence2",
        "label",
        {"entailment": 0, "not_entailment": 1},
        f1=False,
    ),
}
"""Each known task's TSV layout, by lower-case task name."""

GLUE_TASKS: tuple[str, ...] = tuple(_FORMATS)
"""The GLUE tasks glue_scores can run."""

_SPLITS = ("train", "dev")
_NUM_LABELS = 2


def read_glue_task(glue_dir: Path, task: str, split: str) -> list[GlueExample]:
    """Every example of `glue_dir/<TASK>/<split>.tsv` in file order (a UTF-8 BOM is fine)."""
    form = _task_format(task)
    if split not in _SPLITS:
        raise TrainerError(f"GLUE split {split!r}: unknown; use one of {', '.join(_SPLITS)}")
    task_dir = Path(glue_dir) / form.folder
    if not task_dir.is_dir():
        raise TrainerError(
            f"data.glue: {task_dir} is not a directory; point data.glue at the folder "
            "holding MRPC/ and RTE/"
        )
    path = task_dir / f"{split}.tsv"
    if not path.is_file():
        raise TrainerError(f"data.glue: {path} is missing; {task_dir} needs train.tsv and dev.tsv")
    # Split on "\n" only: str.splitlines would also break at \x1c, \u2028 etc. inside text.
    try:
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except UnicodeDecodeError as exc:
        raise TrainerError(
            f"data.glue: {path}: byte {exc.start:,} is not UTF-8 text; save the file as UTF-8"
        ) from None
    header = lines[0].rstrip("\r").split("\t")
    missing = [c for c in (form.text_a, form.text_b, form.label) if c not in header]
    if missing:
        raise TrainerError(
            f"{path}, line 1: header lacks column {missing[0]!r} (has {header}); "
            f"use the GLUE {form.folder} TSV as distributed"
        )
    col_a, col_b, col_label = (header.index(c) for c in (form.text_a, form.text_b, form.label))
    examples = []
    for number, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise TrainerError(
                f"{path}, line {number}: {len(fields)} tab-separated fields, the header has "
                f"{len(header)}; fix or delete that row (a stray tab or a cut-off line)"
            )
        label = fields[col_label].strip()
        if label not in form.labels:
            raise TrainerError(
                f"{path}, line {number}: unknown label {label!r} in column {form.label!r}; "
                f"{form.folder} labels are {', '.join(form.labels)}: fix or delete that row"
            )
        examples.append(GlueExample(fields[col_a], fields[col_b], form.labels[label]))
    return examples


def classification_metrics(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, Any]:
    """n, accuracy, and F1 of the positive class 1 (0.0 when it is never gold nor predicted)."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    if not labels:
        raise ValueError("no labels to score")
    pairs = list(zip(labels, predictions, strict=True))
    true_pos = sum(gold == 1 and pred == 1 for gold, pred in pairs)
    false_pos = sum(gold != 1 and pred == 1 for gold, pred in pairs)
    false_neg = sum(gold == 1 and pred != 1 for gold, pred in pairs)
    f1_denominator = 2 * true_pos + false_pos + false_neg
    return {
        "n": len(pairs),
        "accuracy": sum(gold == pred for gold, pred in pairs) / len(pairs),
        "f1": 2 * true_pos / f1_denominator if f1_denominator else 0.0,
    }


def glue_scores(
    model_dir: Path,
    glue_dir: Path,
    *,
    tasks: Sequence[str] = ("mrpc", "rte"),
    epochs: int = 1,
    lr: float = 5e-4,
    batch_size: int = 16,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    return_predictions: bool = False,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Fine-tune `model_dir` on each task's train split and score its dev split.

    Returns {task: {"group": None, "n", "accuracy"} (+ "f1" for MRPC)}; with
    return_predictions, each also holds the dev "labels" and "predictions" in file order.
    The caps take the first examples of each split.
    """
    forms = {task: _task_format(task) for task in tasks}  # fail on a bad name before any work
    check_model_dir(Path(model_dir), what="GLUE model")
    scores: dict[str, dict[str, Any]] = {}
    for task, form in forms.items():
        train_examples = read_glue_task(glue_dir, task, "train")[:max_train_examples]
        dev_examples = read_glue_task(glue_dir, task, "dev")[:max_eval_examples]
        if not train_examples or not dev_examples:
            raise TrainerError(
                f"GLUE {task}: no examples left to train on or score "
                f"(max_train_examples={max_train_examples}, max_eval_examples={max_eval_examples})"
                "; raise the caps or check the TSV files"
            )
        predictions = finetune_and_predict(
            model_dir,
            train_examples,
            dev_examples,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            seed=seed,
            device=device,
            progress=progress,
            desc=task,
        )
        labels = [e.label for e in dev_examples]
        metrics = classification_metrics(labels, predictions)
        result: dict[str, Any] = {"group": None, "n": metrics["n"], "accuracy": metrics["accuracy"]}
        if form.f1:
            result["f1"] = metrics["f1"]
        if return_predictions:
            result["labels"], result["predictions"] = labels, predictions
        scores[task] = result
    return scores


def finetune_and_predict(
    model_dir: Path,
    train_examples: Sequence[GlueExample],
    eval_examples: Sequence[GlueExample],
    *,
    epochs: int = 1,
    lr: float = 5e-4,
    batch_size: int = 16,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
    desc: str = "glue",
) -> list[int]:
    """Fine-tune a fresh classifier from `model_dir` on train_examples; predict eval_examples."""
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise TrainerError(
            f"GLUE fine-tuning: epochs ({epochs}) and batch_size ({batch_size}) must be >= 1 "
            f"and lr ({lr}) > 0"
        )
    model_dir = Path(model_dir)
    check_model_dir(model_dir, what="GLUE model")
    tokenizer = load_tokenizer(model_dir)
    torch.manual_seed(seed)  # the new head's init
    model = to_device(_load_classifier(model_dir, tokenizer), device)
    max_length = int(model.config.max_position_embeddings)
    train_ids = [_encode_pair(tokenizer, e, max_length) for e in train_examples]
    eval_ids = [_encode_pair(tokenizer, e, max_length) for e in eval_examples]
    pad_id = int(tokenizer.pad_token_id)

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    order = list(range(len(train_ids)))
    shuffle = random.Random(seed)
    steps = epochs * -(-len(order) // batch_size)
    bar = tqdm(total=steps, desc=f"GLUE {desc}", disable=not progress, leave=False)
    model.train()
    for _epoch in range(epochs):
        shuffle.shuffle(order)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, mask = _pad([train_ids[i] for i in rows], pad_id, device)
            labels = torch.tensor([train_examples[i].label for i in rows], device=device)
            logits = model(input_ids=input_ids, attention_mask=mask).logits  # (B, 2)
            loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()

    model.eval()
    predictions: list[int] = []
    with torch.no_grad():
        for start in range(0, len(eval_ids), batch_size):
            input_ids, mask = _pad(eval_ids[start : start + batch_size], pad_id, device)
            logits = model(input_ids=input_ids, attention_mask=mask).logits  # (B, 2)
            predictions.extend(logits.argmax(-1).tolist())
    return predictions


def _task_format(task: str) -> _TaskFormat:
    if task not in _FORMATS:
        raise TrainerError(f"GLUE task {task!r}: unknown; use one of {', '.join(GLUE_TASKS)}")
    return _FORMATS[task]


def _load_classifier(
    model_dir: Path, tokenizer: PreTrainedTokenizerBase
) -> LlamaForSequenceClassification:
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise TrainerError(
            f"GLUE model {model_dir}: its tokenizer lacks a pad or </s> token; "
            "pass a checkpoint written by trainers"
        )
    # The head is new and lm_head unused: transformers' load report about them is expected.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return LlamaForSequenceClassification.from_pretrained(
            str(model_dir),
            num_labels=_NUM_LABELS,
            pad_token_id=tokenizer.pad_token_id,  # pooling finds the last non-pad token by it
            dtype=torch.float32,
        )
    except (OSError, ValueError) as exc:
        raise TrainerError(f"GLUE model {model_dir}: cannot load the model ({exc})") from None
    finally:
        hf_logging.set_verbosity(verbosity)


def _encode_pair(
    tokenizer: PreTrainedTokenizerBase, example: GlueExample, max_length: int
) -> list[int]:
    """`<s> a </s> b`, cutting the longer text's tail first so both fit in max_length."""
    ids_a = tokenizer.encode(example.text_a, add_special_tokens=False)
    ids_b = tokenizer.encode(example.text_b, add_special_tokens=False)
    budget = max_length - 2
    keep_a = min(len(ids_a), max(budget - len(ids_b), (budget + 1) // 2))
    keep_b = min(len(ids_b), budget - keep_a)
    return [
        tokenizer.bos_token_id,
        *ids_a[:keep_a],
        tokenizer.eos_token_id,
        *ids_b[:keep_b],
    ]


def _pad(rows: Sequence[list[int]], pad_id: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, W) ids and attention mask; causal attention keeps pads out of real tokens."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return input_ids.to(device), mask.to(device)
