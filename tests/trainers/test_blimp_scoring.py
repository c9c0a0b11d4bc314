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
from trainers.evaluate.blimp import read_blimp, sentence_log_likelihoods
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


def sentence_log_prob(model: LlamaForCausalLM, tokenizer, text: str) -> float:
    """Unbatched, from the model's own loss: -mean CE times the number of scored tokens.

    `text` is what follows BOS: " " + sentence for lm-eval's convention.
    """
    ids = [tokenizer.bos_token_id, *tokenizer.encode(text, add_special_tokens=False)]
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
    real_good_wins = sentence_log_prob(model, tokenizer, " " + real[0]) >= sentence_log_prob(
        model, tokenizer, " " + real[1]
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


def direct_log_likelihood(model: LlamaForCausalLM, ids: list[int]) -> float:
    """Sum over ids[1:] of log p(id | ids before it), from one unbatched forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()  # (L, V)
    log_probs = torch.log_softmax(logits[:-1], dim=-1)
    return float(log_probs[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum())


def test_both_conventions_equal_a_direct_transformers_computation(
    teachers: list[TrainResult], data_config: DataConfig
):
    """lm_eval (default): BOS + tokenize(" " + sentence); no_space: BOS + tokenize(sentence)."""
    model_dir = teachers[0].final_dir
    model = LlamaForCausalLM.from_pretrained(str(model_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    paradigms = {p.name: p for p in read_blimp(data_config.blimp, max_pairs_per_paradigm=2)}
    sentences = [
        s
        for name in (
            "adjunct_island",
            "anaphor_gender_agreement",
            "regular_plural_subject_verb_agreement_1",
        )
        for pair in paradigms[name].pairs
        for s in pair
    ]
    bos = tokenizer.bos_token_id
    for convention, prefix in (("lm_eval", " "), ("no_space", "")):
        scores = sentence_log_likelihoods(
            model, tokenizer, sentences, convention=convention, batch_size=3
        )
        for sentence in sentences:
            ids = [bos, *tokenizer(prefix + sentence, add_special_tokens=False)["input_ids"]]
            assert scores[sentence] == pytest.approx(direct_log_likelihood(model, ids), abs=1e-5)
    # the two conventions really differ: this tokenizer adds no prefix space
    first_tokens = {p: tokenizer.tokenize(p + sentences[0])[0] for p in (" ", "")}
    assert first_tokens[" "] != first_tokens[""] and first_tokens[" "].startswith("Ġ")
    default = blimp_accuracy(
        model, data_config.blimp, tokenizer=tokenizer, max_pairs_per_paradigm=2
    )
    assert default.convention == "lm_eval"
    lm_eval = sentence_log_likelihoods(model, tokenizer, sentences)
    for name in ("adjunct_island", "anaphor_gender_agreement"):
        want = [lm_eval[good] >= lm_eval[bad] for good, bad in paradigms[name].pairs]
        assert default.decisions is not None and default.decisions[name] == want
    other = blimp_accuracy(
        model,
        data_config.blimp,
        tokenizer=tokenizer,
        max_pairs_per_paradigm=2,
        convention="no_space",
    )
    assert other.convention == "no_space"
    with pytest.raises(TrainerError, match=r"data\.blimp_convention"):
        sentence_log_likelihoods(model, tokenizer, sentences, convention="spaced")  # type: ignore[arg-type]
