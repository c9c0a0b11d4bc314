"""BabyLM's zero-shot suites (trainers.evaluate.zeroshot) on a real tiny checkpoint.

The suites are small files in BabyLM's evaluation_data format written by the tests;
scores are checked against lm-eval's conventions computed here one request at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.trainers import task_files
from trainers.data import load_tokenizer
from trainers.errors import TrainerError
from trainers.evaluate.blimp import sentence_log_likelihoods
from trainers.evaluate.zeroshot import (
    continuation_log_likelihoods,
    read_zero_shot,
    zero_shot_accuracy,
)
from trainers.model import load_model


@pytest.fixture(scope="module")
def suites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zero_shot")
    task_files.write_zero_shot(root)
    return root


def _one_request(model, context_ids: list[int], continuation_ids: list[int]) -> float:
    """Sum of log p(continuation token | all before it), unbatched, in float64."""
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        log_probs = F.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)  # (L, V)
    start = len(context_ids)
    return sum(
        float(log_probs[p - 1, ids[0, p]]) for p in range(start, start + len(continuation_ids))
    )


def test_ewok_scores_the_target_after_its_context_as_lm_eval(tiny_checkpoint: Path):
    model, tokenizer = (
        load_model(tiny_checkpoint, what="checkpoint"),
        load_tokenizer(tiny_checkpoint),
    )
    context, target = "The cup is on the table.", "The cup is above the table."
    scores = continuation_log_likelihoods(model, tokenizer, [(context, target), ("", target)])
    # lm-eval's _encode_pair: the continuation is what the joint encoding adds to the context's.
    whole = tokenizer.encode(context + " " + target, add_special_tokens=False)
    context_ids = tokenizer.encode(context, add_special_tokens=False)
    want = _one_request(model, context_ids, whole[len(context_ids) :])
    assert scores[(context, target)] == pytest.approx(want, abs=1e-6)
    # An empty context is BLiMP's: the prefix token, then " " + sentence.
    blimp = sentence_log_likelihoods(model, tokenizer, [target])[target]
    assert scores[("", target)] == pytest.approx(blimp, abs=1e-6)


def test_suite_accuracy_is_the_unweighted_mean_over_subtasks(tiny_checkpoint: Path, suites: Path):
    model, tokenizer = (
        load_model(tiny_checkpoint, what="checkpoint"),
        load_tokenizer(tiny_checkpoint),
    )
    for suite, folder in (
        ("blimp_filtered", "blimp_filtered"),
        ("blimp_supplement", "supplement_filtered"),
        ("ewok", "ewok_filtered"),
    ):
        result = zero_shot_accuracy(model, suites / folder, suite, tokenizer=tokenizer)
        items = read_zero_shot(suites / folder, suite)
        assert set(result.by_subtask) == set(items)
        for name, subtask in items.items():
            want = [
                _one_request(model, *_ids(tokenizer, i.context, i.right))
                >= _one_request(model, *_ids(tokenizer, i.context, i.wrong))
                for i in subtask
            ]
            assert result.decisions[name] == want
            assert result.by_subtask[name] == pytest.approx(sum(want) / len(want))
        assert result.overall == pytest.approx(sum(result.by_subtask.values()) / len(items))
    assert read_zero_shot(suites / "ewok_filtered", "ewok")["physical-relations"][0].context


def _ids(tokenizer, context: str, choice: str) -> tuple[list[int], list[int]]:
    if not context:
        return [tokenizer.bos_token_id], tokenizer.encode(" " + choice, add_special_tokens=False)
    whole = tokenizer.encode(context + " " + choice, add_special_tokens=False)
    context_ids = tokenizer.encode(context, add_special_tokens=False)
    return context_ids, whole[len(context_ids) :]


def test_a_wrong_item_names_the_file_and_the_field(tmp_path: Path):
    folder = tmp_path / "ewok_filtered"
    task_files.write_jsonl(folder / "agent-properties.jsonl", [{"Context1": "c", "Target1": "t"}])
    with pytest.raises(TrainerError) as err:
        read_zero_shot(folder, "ewok")
    assert f"{folder / 'agent-properties.jsonl'}, line 1" in str(err.value)
    assert "'Target2'" in str(err.value)
    with pytest.raises(TrainerError, match="holds no blimp_supplement"):
        read_zero_shot(tmp_path / "nowhere", "blimp_supplement")
