"""trainers.evaluate: BLiMP minimal-pair accuracy and checkpoint dev/test loss."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from trainers.config import DataConfig
from trainers.errors import TrainerError
from trainers.evaluate import blimp_accuracy, evaluate_loss
from trainers.recipe import TrainResult

GROUPS = {
    "anaphor_agreement",
    "argument_structure",
    "binding",
    "control_raising",
    "determiner_noun_agreement",
    "ellipsis",
    "filler_gap_dependency",
    "irregular_forms",
    "island_effects",
    "npi_licensing",
    "quantifiers",
    "subject_verb_agreement",
}


def test_all_paradigms_and_groups_scored_deterministically(
    teachers: list[TrainResult], data_config: DataConfig
):
    model_dir = teachers[0].final_dir
    first = blimp_accuracy(model_dir, data_config.blimp, max_pairs_per_paradigm=6, batch_size=64)
    again = blimp_accuracy(model_dir, data_config.blimp, max_pairs_per_paradigm=6, batch_size=7)
    assert first == again
    assert len(first.by_paradigm) == 67
    assert set(first.by_group) == GROUPS
    assert first.by_paradigm["animate_subject_passive"].group == "argument_structure"
    assert first.by_paradigm["adjunct_island"].group == "island_effects"
    assert all(score.n == 6 for score in first.by_paradigm.values())
    mean = sum(s.accuracy for s in first.by_paradigm.values()) / 67
    assert first.overall == pytest.approx(mean)
    binding = [s.accuracy for s in first.by_paradigm.values() if s.group == "binding"]
    assert first.by_group["binding"] == pytest.approx(sum(binding) / len(binding))


def sentence_log_prob(model: LlamaForCausalLM, tokenizer, sentence: str) -> float:
    """Unbatched, from the model's own loss: -mean CE times the number of scored tokens."""
    ids = [tokenizer.bos_token_id, *tokenizer.encode(sentence, add_special_tokens=False)]
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        loss = model(input_ids=input_ids, labels=input_ids).loss
    return -loss.item() * (len(ids) - 1)


def test_hand_checked_pairs(teachers: list[TrainResult], tmp_path: Path):
    model_dir = teachers[0].final_dir
    model = LlamaForCausalLM.from_pretrained(str(model_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # a corpus-like sentence against scrambled letters: any trained model prefers the first
    obvious = [
        ("what's this?", "wh'ts thsi?"),
        ("do you want the ball?", "od uyo tnaw eht labl?"),
        ("the king had three daughters.", "eth gikn dah ehtre tdsuhgare."),
    ]
    # a real BLiMP pair, decided by hand from unbatched scores, either way it falls
    real = (
        "Who should Derek hug after shocking Richard?",
        "Who should Derek hug Richard after shocking?",
    )
    real_good_wins = sentence_log_prob(model, tokenizer, real[0]) >= sentence_log_prob(
        model, tokenizer, real[1]
    )
    blimp_dir = tmp_path / "blimp"
    blimp_dir.mkdir()
    for name, pairs in (("obvious", obvious), ("real", [real])):
        lines = [
            json.dumps({"sentence_good": g, "sentence_bad": b, "linguistics_term": "binding"})
            for g, b in pairs
        ]
        (blimp_dir / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    result = blimp_accuracy(model, blimp_dir, tokenizer=tokenizer, batch_size=2)
    assert result.by_paradigm["obvious"].accuracy == 1.0
    assert result.by_paradigm["real"].accuracy == float(real_good_wins)
    assert result.overall == pytest.approx((1.0 + float(real_good_wins)) / 2)


def test_loaded_model_needs_its_tokenizer(teachers: list[TrainResult], data_config: DataConfig):
    model = LlamaForCausalLM.from_pretrained(str(teachers[0].final_dir))
    with pytest.raises(TrainerError, match="tokenizer: required"):
        blimp_accuracy(model, data_config.blimp)
    with pytest.raises(TrainerError, match=r"data\.blimp: .* holds no BLiMP"):
        blimp_accuracy(teachers[0].final_dir, teachers[0].final_dir)


def test_evaluate_loss_matches_the_recipes_dev_loss(
    teachers: list[TrainResult], data_config: DataConfig
):
    result = teachers[0]
    dev = evaluate_loss(result.final_dir, data_config, "dev")
    assert dev == pytest.approx(result.metrics["dev_loss"], rel=1e-5)
    assert math.exp(dev) == pytest.approx(result.metrics["dev_ppl"], rel=1e-4)
    test = evaluate_loss(result.final_dir, data_config, "test")
    assert 0 < test < math.log(500)
    assert test != dev
