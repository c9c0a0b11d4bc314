"""BLiMP minimal pairs scored as lm-eval-harness scores them.

Default convention `lm_eval`: lm-eval's blimp tasks are multiple choice with an empty
context and target_delimiter " ", so a sentence's score is the sum of the log-probabilities
of the tokens of " " + sentence, conditioned on one prefix token (lm-eval's
`prefix_token_id`: BOS, else EOS). Every BLiMP number babysweep prints uses it unless
`data.blimp_convention` says otherwise, so it compares with lm-eval's and the BabyLM
leaderboard's. The `no_space` convention scores the tokens of the bare sentence after
the prefix (babysweep's scoring before it matched lm-eval); with a byte-level BPE that
adds no prefix space, the first word's token differs between the two, and some pair
decisions flip.

A pair is correct when score(good) >= score(bad) (lm-eval takes the argmax over the two
choices, the first on a tie, so a tie counts as correct). Overall accuracy is the mean
over paradigms; groups are the 12 `linguistics_term` values, with the two "s-selection"
paradigms (animate_subject_passive/_trans) counted under argument_structure as BLiMP's
paper does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
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
    "BlimpConvention",
    "BlimpResult",
    "ParadigmScore",
    "blimp_accuracy",
    "read_blimp",
    "sentence_log_likelihoods",
]

BlimpConvention = Literal["lm_eval", "no_space"]
"""lm_eval: log p(" " + sentence | prefix); no_space: log p(sentence | prefix)."""

_GROUP_ALIASES = {"s-selection": "argument_structure"}


@dataclass
class ParadigmScore:
    """Accuracy on one BLiMP paradigm (e.g. adjunct_island)."""

    accuracy: float
    n: int
    group: str


@dataclass
class BlimpResult:
    """BLiMP accuracy overall (mean over paradigms), per paradigm and per phenomenon group."""

    overall: float
    by_paradigm: dict[str, ParadigmScore]
    by_group: dict[str, float]
    convention: BlimpConvention = "lm_eval"
    """How sentences were scored (see the module docstring)."""
    decisions: dict[str, list[bool]] | None = None
    """Paradigm -> per-pair correctness, in file order."""


@dataclass(frozen=True)
class _Paradigm:
    name: str
    group: str
    pairs: list[tuple[str, str]]  # (good, bad)


def read_blimp(blimp_dir: Path, max_pairs_per_paradigm: int | None = None) -> list[_Paradigm]:
    """The paradigms of a BLiMP dir (one `<UID>.jsonl` each), first pairs first."""
    blimp_dir = Path(blimp_dir)
    files = sorted(blimp_dir.glob("*.jsonl")) if blimp_dir.is_dir() else []
    if not files:
        raise TrainerError(
            f"data.blimp: {blimp_dir} holds no BLiMP *.jsonl files; point data.blimp at "
            "the folder of the 67 paradigm files"
        )
    paradigms = []
    for path in files:
        pairs: list[tuple[str, str]] = []
        group = ""
        with path.open(encoding="utf-8", errors="strict") as handle:
            for line in _utf8_lines(handle, path):
                if not line.strip():
                    continue
                if max_pairs_per_paradigm is not None and len(pairs) >= max_pairs_per_paradigm:
                    break
                try:
                    row = json.loads(line)
                    pairs.append((row["sentence_good"], row["sentence_bad"]))
                except (json.JSONDecodeError, KeyError) as exc:
                    raise TrainerError(
                        f"{path}: not a BLiMP file (needs sentence_good, sentence_bad, "
                        f"linguistics_term per line): {exc}"
                    ) from None
                group = row.get("linguistics_term", group)
        if pairs:
            group = _GROUP_ALIASES.get(group, group)
            paradigms.append(_Paradigm(path.stem, group, pairs))
    return paradigms


def _utf8_lines(handle: Iterator[str], path: Path) -> Iterator[str]:
    """The file's lines; a byte that is not UTF-8 is one TrainerError naming the file."""
    try:
        yield from handle
    except UnicodeDecodeError:
        raise TrainerError(f"data.blimp: {path}: not UTF-8 text; save the file as UTF-8") from None


def blimp_accuracy(
    model: str | Path | PreTrainedModel,
    blimp_dir: Path,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_pairs_per_paradigm: int | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    convention: BlimpConvention = "lm_eval",
    progress: bool = False,
) -> BlimpResult:
    """Score every BLiMP paradigm; `model` is a checkpoint dir or a loaded model + tokenizer.

    convention: lm_eval (default, as lm-evaluation-harness) or no_space; see the module doc.
    progress: a bar on stderr over the sentences scored.

    Example::

        result = blimp_accuracy("runs/teacher/final", Path("../shared/data/blimp"))
        print(result.overall, result.by_group["island_effects"])
    """
    lm: PreTrainedModel
    if isinstance(model, str | Path):
        model_dir = Path(model)
        lm = load_model(model_dir, what="checkpoint")
        tokenizer = tokenizer or load_tokenizer(model_dir)
    else:
        lm = model
        if tokenizer is None:
            raise TrainerError("tokenizer: required when blimp_accuracy gets a loaded model")
    paradigms = read_blimp(blimp_dir, max_pairs_per_paradigm)
    sentences = sorted({s for p in paradigms for pair in p.pairs for s in pair})
    scores = sentence_log_likelihoods(
        lm,
        tokenizer,
        sentences,
        convention=convention,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )

    by_paradigm, decisions = {}, {}
    for p in paradigms:
        decisions[p.name] = [scores[good] >= scores[bad] for good, bad in p.pairs]
        correct = sum(decisions[p.name])
        by_paradigm[p.name] = ParadigmScore(correct / len(p.pairs), len(p.pairs), p.group)
    groups: dict[str, list[float]] = {}
    for score in by_paradigm.values():
        groups.setdefault(score.group, []).append(score.accuracy)
    return BlimpResult(
        overall=sum(s.accuracy for s in by_paradigm.values()) / len(by_paradigm),
        by_paradigm=by_paradigm,
        by_group={g: sum(a) / len(a) for g, a in sorted(groups.items())},
        convention=convention,
        decisions=decisions,
    )


def sentence_log_likelihoods(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sentences: list[str],
    *,
    convention: BlimpConvention = "lm_eval",
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, float]:
    """Each sentence's summed token log-probability after the prefix token, per `convention`."""
    if convention not in ("lm_eval", "no_space"):
        raise TrainerError(f"data.blimp_convention: {convention!r} is not lm_eval or no_space")
    prefix_id = tokenizer.bos_token_id
    if prefix_id is None:
        prefix_id = tokenizer.eos_token_id
    if prefix_id is None:
        raise TrainerError("tokenizer: has neither a BOS nor an EOS token to condition on")
    # lm-eval: empty context + target_delimiter " " + choice, encoded without special tokens
    texts = [" " + s if convention == "lm_eval" else s for s in sentences]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    token_ids = {s: [prefix_id, *ids] for s, ids in zip(sentences, encoded, strict=True)}
    return _sentence_log_probs(
        model, token_ids, batch_size=batch_size, device=device, progress=progress
    )


@torch.no_grad()
def _sentence_log_probs(
    model: PreTrainedModel,
    token_ids: dict[str, list[int]],
    *,
    batch_size: int,
    device: str,
    progress: bool = False,
) -> dict[str, float]:
    """Sum of log p(token | prefix) over each sentence's tokens after the BOS prefix."""
    was_training = model.training
    model.eval()
    model_device = next(model.parameters()).device
    target = torch.device(device) if device else model_device
    if model_device != target:
        to_device(model, target)
    # Length-sorted batches waste little on padding; padding is on the right, so causal
    # attention keeps it from touching the real tokens.
    ordered = sorted(token_ids, key=lambda s: (len(token_ids[s]), s))
    scores: dict[str, float] = {}
    bar = tqdm(
        total=len(ordered),
        desc="BLiMP",
        unit="sentence",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    )
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        lengths = torch.tensor([len(token_ids[s]) for s in batch])
        width = int(lengths.max())
        input_ids = torch.zeros(len(batch), width, dtype=torch.long)
        for row, sentence in enumerate(batch):
            input_ids[row, : lengths[row]] = torch.tensor(token_ids[sentence])
        mask = torch.arange(width)[None, :] < lengths[:, None]  # (B, W)
        input_ids, mask = input_ids.to(target), mask.to(target)
        logits = model(input_ids=input_ids, attention_mask=mask.long()).logits  # (B, W, V)
        # float64: a score sums ~20 log-probs, and must match lm-eval's to 1e-5
        log_probs = F.log_softmax(logits[:, :-1].double(), dim=-1)  # (B, W-1, V)
        token_log_probs = log_probs.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (B, W-1)
        sums = (token_log_probs * mask[:, 1:]).sum(-1)
        scores.update(zip(batch, sums.tolist(), strict=True))
        bar.update(len(batch))
    bar.close()
    model.train(was_training)
    return scores
