"""BabyLM's zero-shot suites: BLiMP filtered, BLiMP supplement and EWoK, scored as lm-eval does.

Each suite is a folder of `<subtask>.jsonl` files (BabyLM 2024's `evaluation_data/`
names: blimp_filtered/, supplement_filtered/, ewok_filtered/). lm-eval's task definitions
in BabyLM's fork (lm_eval/tasks/blimp_filtered, blimp_supplement, ewok_filtered:
`_template_yaml`) make every item a two-choice multiple_choice with gold choice 0:

- BLiMP filtered and supplement: empty context, choices [sentence_good, sentence_bad],
  so a choice scores log p(" " + sentence | prefix token), as `trainers.evaluate.blimp`
  scores BLiMP (the supplement's dialogue pairs share their first turn as a prefix of
  the sentence; it is scored inside the sentence, as lm-eval does).
- EWoK: context Context1, choices [Target1, Target2]: a choice scores
  log p(" " + target | context), the context encoded alone and the continuation as the
  tokens the joint encoding adds after it (lm-eval's `_encode_pair`); no prefix token
  when the context is not empty.

An item is right when choice 0 scores >= choice 1 (lm-eval's argmax keeps the first of a
tie). A subtask's accuracy is its items' mean and a suite's is the unweighted mean over
its subtasks (the templates' `weight_by_size: false`).

Example::

    result = zero_shot_accuracy("runs/teacher/final", Path("data/ewok_filtered"), "ewok")
    print(result.overall, result.by_subtask)
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trainers.data import load_tokenizer
from trainers.errors import TrainerError
from trainers.model import load_model, to_device

__all__ = [
    "ZERO_SHOT_SUITES",
    "ZeroShotItem",
    "ZeroShotResult",
    "ZeroShotSuite",
    "continuation_log_likelihoods",
    "read_zero_shot",
    "zero_shot_accuracy",
]

SuiteName = Literal["blimp_filtered", "blimp_supplement", "ewok"]


@dataclass(frozen=True)
class ZeroShotSuite:
    """A suite's folder under the data root and the fields one item needs."""

    name: str
    folder: str
    context: str | None
    """The field conditioned on (EWoK: Context1); None: the empty context."""
    choices: tuple[str, str]
    """(right, wrong) fields."""


ZERO_SHOT_SUITES: dict[str, ZeroShotSuite] = {
    s.name: s
    for s in (
        ZeroShotSuite("blimp_filtered", "blimp_filtered", None, ("sentence_good", "sentence_bad")),
        ZeroShotSuite(
            "blimp_supplement", "supplement_filtered", None, ("sentence_good", "sentence_bad")
        ),
        ZeroShotSuite("ewok", "ewok_filtered", "Context1", ("Target1", "Target2")),
    )
}


@dataclass(frozen=True)
class ZeroShotItem:
    """One two-choice item: the context (may be empty) and the right and wrong choices."""

    context: str
    right: str
    wrong: str


@dataclass
class ZeroShotResult:
    """A suite's accuracy: unweighted mean over subtasks, and each subtask's."""

    suite: str
    overall: float
    by_subtask: dict[str, float]
    n: dict[str, int]
    decisions: dict[str, list[bool]]


def read_zero_shot(
    folder: Path, suite: str, max_items_per_subtask: int | None = None
) -> dict[str, list[ZeroShotItem]]:
    """subtask -> its items, first first, from every `<subtask>.jsonl` in `folder`."""
    spec = _suite(suite)
    folder = Path(folder)
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    if not files:
        raise TrainerError(
            f"{folder}: holds no {suite} *.jsonl files; put BabyLM's {spec.folder}/ there "
            "(docs/DATA.md) or drop it from evaluation.zero_shot.suites"
        )
    fields = [f for f in (spec.context, *spec.choices) if f]
    subtasks: dict[str, list[ZeroShotItem]] = {}
    for path in files:
        items: list[ZeroShotItem] = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                if max_items_per_subtask is not None and len(items) >= max_items_per_subtask:
                    break
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TrainerError(f"{path}, line {number}: not JSON ({exc})") from None
                missing = [f for f in fields if not isinstance(row.get(f), str)]
                if missing:
                    raise TrainerError(
                        f"{path}, line {number}: no text field {missing[0]!r} (a {suite} item "
                        f"needs {', '.join(fields)}); use BabyLM's {spec.folder} files"
                    )
                context = row[spec.context] if spec.context else ""
                items.append(ZeroShotItem(context, row[spec.choices[0]], row[spec.choices[1]]))
        if items:
            subtasks[path.stem] = items
    return subtasks


def zero_shot_accuracy(
    model: str | Path | PreTrainedModel,
    folder: Path,
    suite: str,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_items_per_subtask: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = False,
) -> ZeroShotResult:
    """Score every item of a suite's folder; `model` is a checkpoint dir or a loaded model;
    progress: a bar on stderr over the continuations scored."""
    lm: PreTrainedModel
    if isinstance(model, str | Path):
        lm = load_model(Path(model), what="checkpoint")
        tokenizer = tokenizer or load_tokenizer(Path(model))
    else:
        lm = model
    if tokenizer is None:
        raise TrainerError("tokenizer: required when zero_shot_accuracy gets a loaded model")
    subtasks = read_zero_shot(folder, suite, max_items_per_subtask)
    requests = sorted(
        {(i.context, c) for items in subtasks.values() for i in items for c in (i.right, i.wrong)}
    )
    scores = continuation_log_likelihoods(
        lm, tokenizer, requests, batch_size=batch_size, device=device, desc=suite, progress=progress
    )
    decisions = {
        name: [scores[(i.context, i.right)] >= scores[(i.context, i.wrong)] for i in items]
        for name, items in subtasks.items()
    }
    by_subtask = {name: sum(d) / len(d) for name, d in decisions.items()}
    return ZeroShotResult(
        suite=suite,
        overall=sum(by_subtask.values()) / len(by_subtask),
        by_subtask=by_subtask,
        n={name: len(d) for name, d in decisions.items()},
        decisions=decisions,
    )


def continuation_log_likelihoods(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    requests: list[tuple[str, str]],
    *,
    batch_size: int = 64,
    device: str = "cpu",
    desc: str = "zero-shot",
    progress: bool = False,
) -> dict[tuple[str, str], float]:
    """log p(" " + choice | context) per (context, choice), tokenised as lm-eval does."""
    prefix_id = tokenizer.bos_token_id
    if prefix_id is None:
        prefix_id = tokenizer.eos_token_id
    if prefix_id is None:
        raise TrainerError("tokenizer: has neither a BOS nor an EOS token to condition on")
    encoded: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for key in requests:
        context, choice = key
        continuation = " " + choice  # lm-eval's default target_delimiter
        spaces = len(context) - len(context.rstrip())
        if spaces:  # lm-eval moves the context's trailing spaces onto the continuation
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        if not context:
            context_ids = [prefix_id]
            continuation_ids = tokenizer.encode(continuation, add_special_tokens=False)
        else:
            whole = tokenizer.encode(context + continuation, add_special_tokens=False)
            context_ids = tokenizer.encode(context, add_special_tokens=False)
            continuation_ids = whole[len(context_ids) :]
        encoded[key] = (context_ids, continuation_ids)
    return _score(
        model, encoded, batch_size=batch_size, device=device, desc=desc, progress=progress
    )


@torch.no_grad()
def _score(
    model: PreTrainedModel,
    encoded: dict[tuple[str, str], tuple[list[int], list[int]]],
    *,
    batch_size: int,
    device: str,
    desc: str,
    progress: bool,
) -> dict[tuple[str, str], float]:
    was_training = model.training
    model.eval()
    target = torch.device(device)
    if next(model.parameters()).device != target:
        to_device(model, target)
    keys = sorted(encoded, key=lambda k: (sum(map(len, encoded[k])), k))
    scores: dict[tuple[str, str], float] = {}
    bar = tqdm(
        total=len(keys), desc=desc, unit="item", file=sys.stderr, disable=not progress, leave=False
    )
    for start in range(0, len(keys), batch_size):
        batch = keys[start : start + batch_size]
        rows = [encoded[k][0] + encoded[k][1] for k in batch]
        width = max(len(r) for r in rows)
        input_ids = torch.zeros(len(rows), width, dtype=torch.long)
        scored = torch.zeros(len(rows), width - 1, dtype=torch.bool)  # predicted positions
        for i, (key, row) in enumerate(zip(batch, rows, strict=True)):
            input_ids[i, : len(row)] = torch.tensor(row)
            n_context = len(encoded[key][0])
            scored[i, n_context - 1 : len(row) - 1] = True
        mask = (torch.arange(width)[None, :] < torch.tensor([len(r) for r in rows])[:, None]).long()
        input_ids, mask, scored = input_ids.to(target), mask.to(target), scored.to(target)
        logits = model(input_ids=input_ids, attention_mask=mask).logits  # (B, W, V)
        log_probs = F.log_softmax(logits[:, :-1].double(), dim=-1)  # (B, W-1, V)
        token_log_probs = log_probs.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (B, W-1)
        sums = (token_log_probs * scored).sum(-1)
        scores.update(zip(batch, sums.tolist(), strict=True))
        bar.update(len(batch))
    bar.close()
    model.train(was_training)
    return scores


def _suite(suite: str) -> ZeroShotSuite:
    if suite not in ZERO_SHOT_SUITES:
        raise TrainerError(
            f"zero-shot suite {suite!r}: unknown; use one of {', '.join(ZERO_SHOT_SUITES)}"
        )
    return ZERO_SHOT_SUITES[suite]
