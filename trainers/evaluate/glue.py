"""(Super)GLUE fine-tuning evaluation: a checkpoint plus a classification head per task.

Each task (`trainers.evaluate.tasks.FINETUNE_TASKS`: BabyLM's CoLA, SST-2, MRPC, QQP, MNLI
matched and mismatched, QNLI, RTE, BoolQ, MultiRC, WSC) fine-tunes a fresh copy of the
checkpoint as LlamaForSequenceClassification (a linear head on the last non-pad token)
with AdamW on the task's train split, by its recipe (epochs, lr, batch size, max sequence
length, patience), scoring dev after every epoch and keeping the best epoch's predictions,
as BabyLM's pipeline does (early stopping and the reported score share the dev split).
mnli-mm is scored by the MNLI fine-tune, chosen on matched dev. An input is encoded as
`<s> text_a` or `<s> text_a </s> text_b`, the `<s>` matching how pretraining starts every
document; seeded init and shuffling make two CPU runs identical.

Example::

    scores = glue_scores(Path("runs/teacher/final"), Path("../shared/data/glue"))
    print(scores["mrpc"]["accuracy"], scores["mrpc"]["f1"], scores["rte"]["accuracy"])
"""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import LlamaForSequenceClassification, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from trainers.data import load_tokenizer
from trainers.errors import TrainerError
from trainers.evaluate.tasks import (
    BABYLM_2024_RECIPE,
    FINETUNE_TASKS,
    FinetuneRecipe,
    FinetuneTask,
    TaskExample,
    majority_baseline,
    read_task,
    selection_score,
    task_files,
    task_metrics,
)
from trainers.model import check_model_dir, to_device

__all__ = [
    "GLUE_TASKS",
    "GlueExample",
    "classification_metrics",
    "finetune_and_predict",
    "glue_average",
    "glue_scores",
    "read_glue_task",
]

GlueExample = TaskExample
"""One input and its gold label (MRPC: 1 = paraphrase; RTE: 1 = not_entailment)."""

GLUE_TASKS: tuple[str, ...] = tuple(FINETUNE_TASKS)
"""The fine-tuning tasks glue_scores can run (BabyLM's eleven)."""


def read_glue_task(glue_dir: Path, task: str, split: str) -> list[TaskExample]:
    """Every example of one task's split (`glue_dir/<Task>/<file>`) in file order."""
    if split not in ("train", "dev"):
        raise TrainerError(f"GLUE split {split!r}: unknown; use one of train, dev")
    spec = _task_format(task)
    task_dir = Path(glue_dir) / spec.folder
    if not task_files(glue_dir, task).present:  # neither the official folder nor filtered files
        raise TrainerError(
            f"data.glue: {task_dir} is not a directory; put the {spec.benchmark} "
            f"{spec.folder} files there (docs/DATA.md) or drop {task} from evaluation.glue.tasks"
        )
    return read_task(glue_dir, task, split)


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


def glue_average(scores: Mapping[str, Mapping[str, Any]]) -> float:
    """Mean over the tasks that ran of each one's primary metric (CoLA MCC, MRPC/QQP F1,
    MultiRC F1a, accuracy elsewhere): the GLUE average of the report and the verdict."""
    values = [float(s[FINETUNE_TASKS[t].primary]) for t, s in scores.items()]
    if not values:
        raise ValueError("no task scores to average")
    return sum(values) / len(values)


def glue_scores(
    model_dir: Path,
    glue_dir: Path,
    *,
    tasks: Sequence[str] = ("mrpc", "rte"),
    recipes: Mapping[str, FinetuneRecipe] | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    max_train_examples: int | None = None,
    max_eval_examples: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    return_predictions: bool = False,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Fine-tune `model_dir` on each task's train split and score its dev split.

    A task's recipe is recipes[its training task] (default: BabyLM 2024's), with epochs,
    lr and batch_size replaced where given. Returns {task: {"group": None, "n", metric...}}
    with the task's official metrics, and beside them the majority-class baseline on the
    same dev examples ("majority_class", "majority_<metric>": `majority_baseline`); with
    return_predictions, each also holds the dev "labels" and "predictions" in file order.
    The caps take the first examples of a split.
    """
    forms = {task: _task_format(task) for task in tasks}  # fail on a bad name before any work
    check_model_dir(Path(model_dir), what="GLUE model")
    given: dict[str, Any] = {
        k: v for k, v in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)) if v
    }
    by_training: dict[str, list[str]] = {}
    for task, form in forms.items():
        by_training.setdefault(form.trains_as, []).append(task)
    scores: dict[str, dict[str, Any]] = {}
    for trains_as, scored in by_training.items():
        recipe = (recipes or {}).get(trains_as, BABYLM_2024_RECIPE)
        recipe = replace(recipe, **given) if given else recipe
        train_examples = read_glue_task(glue_dir, trains_as, "train")[:max_train_examples]
        select_examples = read_glue_task(glue_dir, trains_as, "dev")[:max_eval_examples]
        dev = {t: read_glue_task(glue_dir, t, "dev")[:max_eval_examples] for t in scored}
        if not train_examples or not select_examples or not all(dev.values()):
            raise TrainerError(
                f"GLUE {trains_as}: no examples left to train on or score "
                f"(max_train_examples={max_train_examples}, max_eval_examples={max_eval_examples})"
                "; raise the caps or check the task files"
            )
        run = finetune_and_predict(
            model_dir,
            train_examples,
            {trains_as: select_examples, **dev},
            task=trains_as,
            recipe=recipe,
            seed=seed,
            device=device,
            progress=progress,
        )
        for task in scored:
            predictions = run.predictions[task]
            result: dict[str, Any] = {"group": None, "n": len(dev[task])}
            result.update(task_metrics(task, dev[task], predictions))
            result.update(majority_baseline(task, dev[task]))
            if return_predictions:
                result["labels"] = [e.label for e in dev[task]]
                result["predictions"] = predictions
            scores[task] = result
    return {t: scores[t] for t in tasks}


@dataclass(frozen=True)
class FinetuneRun:
    """The best dev epoch's predictions on each scored split, and how training went."""

    predictions: dict[str, list[int]]
    best_epoch: int
    epochs_run: int
    dev_scores: list[float]
    """The selection score after each epoch."""


def finetune_and_predict(
    model_dir: Path,
    train_examples: Sequence[TaskExample],
    eval_sets: Mapping[str, Sequence[TaskExample]],
    *,
    task: str,
    recipe: FinetuneRecipe = BABYLM_2024_RECIPE,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = False,
) -> FinetuneRun:
    """Fine-tune a fresh classifier from `model_dir` on train_examples, scoring
    eval_sets[task] after each epoch; returns every eval set's predictions at the best epoch.

    AdamW without weight decay, lr decaying linearly to 0 over the planned epochs (Hugging
    Face Trainer's defaults, which BabyLM keeps). Early stopping: after `recipe.patience`
    epochs without a gain over 0.001 in the selection score (F1 for two-class tasks, else
    accuracy), training stops.
    """
    model_dir = Path(model_dir)
    check_model_dir(model_dir, what="GLUE model")
    tokenizer = load_tokenizer(model_dir)
    num_labels = FINETUNE_TASKS[task].num_labels
    torch.manual_seed(seed)  # the new head's init
    model = to_device(_load_classifier(model_dir, tokenizer, num_labels), device)
    max_length = min(recipe.max_seq_length, int(model.config.max_position_embeddings))
    train_ids = [_encode_pair(tokenizer, e, max_length) for e in train_examples]
    eval_ids = {
        k: [_encode_pair(tokenizer, e, max_length) for e in v] for k, v in eval_sets.items()
    }
    pad_id = int(tokenizer.pad_token_id)

    # Hugging Face Trainer's defaults, which BabyLM's finetune_classification.py keeps: AdamW
    # without weight decay, the lr decaying linearly to 0 over every planned step, no warmup.
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0)
    order = list(range(len(train_ids)))
    shuffle = random.Random(seed)
    steps = recipe.epochs * -(-len(order) // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / steps)
    bar = tqdm(
        total=steps,
        desc=f"GLUE {task}",
        unit="step",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    )
    best: tuple[float, int, dict[str, list[int]]] | None = None
    dev_scores: list[float] = []
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        shuffle.shuffle(order)
        for start in range(0, len(order), recipe.batch_size):
            rows = order[start : start + recipe.batch_size]
            input_ids, mask = _pad([train_ids[i] for i in rows], pad_id, device)
            labels = torch.tensor([train_examples[i].label for i in rows], device=device)
            logits = model(input_ids=input_ids, attention_mask=mask).logits  # (B, C)
            loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        predictions = {
            k: _predict(model, ids, pad_id, recipe.batch_size, device)
            for k, ids in eval_ids.items()
        }
        score = selection_score(task, eval_sets[task], predictions[task])
        dev_scores.append(score)
        if best is None or score > best[0] + 0.001:
            best = (score, epoch, predictions)
        elif recipe.patience is not None and epoch - best[1] >= recipe.patience:
            break
    bar.close()
    assert best is not None
    return FinetuneRun(best[2], best[1], len(dev_scores), dev_scores)


@torch.no_grad()
def _predict(
    model: LlamaForSequenceClassification,
    ids: Sequence[list[int]],
    pad_id: int,
    batch_size: int,
    device: str,
) -> list[int]:
    model.eval()
    predictions: list[int] = []
    for start in range(0, len(ids), max(batch_size, 32)):
        input_ids, mask = _pad(ids[start : start + max(batch_size, 32)], pad_id, device)
        logits = model(input_ids=input_ids, attention_mask=mask).logits  # (B, C)
        predictions.extend(logits.argmax(-1).tolist())
    return predictions


def _task_format(task: str) -> FinetuneTask:
    if task not in FINETUNE_TASKS:
        raise TrainerError(f"GLUE task {task!r}: unknown; use one of {', '.join(GLUE_TASKS)}")
    return FINETUNE_TASKS[task]


def _load_classifier(
    model_dir: Path, tokenizer: PreTrainedTokenizerBase, num_labels: int
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
            num_labels=num_labels,
            pad_token_id=tokenizer.pad_token_id,  # pooling finds the last non-pad token by it
            dtype=torch.float32,
        )
    except (OSError, ValueError) as exc:
        raise TrainerError(f"GLUE model {model_dir}: cannot load the model ({exc})") from None
    finally:
        hf_logging.set_verbosity(verbosity)


def _encode_pair(
    tokenizer: PreTrainedTokenizerBase, example: TaskExample, max_length: int
) -> list[int]:
    """`<s> a </s> b` (or `<s> a`), cutting the longer text's tail first to fit max_length."""
    ids_a = tokenizer.encode(example.text_a, add_special_tokens=False)
    if example.text_b is None:
        return [tokenizer.bos_token_id, *ids_a[: max_length - 1]]
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
