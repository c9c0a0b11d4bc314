"""trainers.recipe.train: teachers, students, checkpoints, resume and bad input."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaForCausalLM

from trainers.config import DataConfig, ModelConfig, RecipeConfig
from trainers.data import PreparedCorpus, load_tokenizer, prepare_corpus
from trainers.errors import NonFiniteLossError, TrainerError
from trainers.model import build_model
from trainers.recipe import TrainingRecipe, TrainResult, train

MakeConfig = Callable[..., RecipeConfig]
EPOCH_KEYS = {"epoch", "step", "train_loss", "train_ce", "dev_loss", "dev_ppl", "tokens_per_s"}
EPOCH_KEYS |= {"lr", "tokens_seen"}


class Interrupted(Exception):
    """Stands in for a trial killed right after its first report."""


def test_teacher_dev_loss_falls_and_every_epoch_is_reported(teachers: list[TrainResult]):
    for result in teachers:
        history = result.history
        assert [m["epoch"] for m in history] == [1.0, 2.0]
        assert set(history[0]) == EPOCH_KEYS  # a teacher logs no KL
        assert history[1]["dev_loss"] < history[0]["dev_loss"]
        assert history[1]["dev_loss"] < 6.0  # well under ln(500) = 6.2, uniform guessing
        assert history[1]["step"] == 2 * history[0]["step"]
        assert history[1]["tokens_seen"] == pytest.approx(2 * history[0]["tokens_seen"])
        assert result.metrics == history[-1]
        assert result.num_parameters > 50_000


def test_checkpoints_are_complete_hf_dirs(teachers: list[TrainResult]):
    result = teachers[0]
    reported = result.final_dir.parent.parent / "reported"
    for epoch in (1, 2):
        checkpoint = reported / f"epoch_{epoch}"
        for name in ("model.safetensors", "config.json", "tokenizer.json", "recipe_config.json"):
            assert (checkpoint / name).is_file(), name
        state = torch.load(checkpoint / "train_state.pt", weights_only=False)
        assert state["epoch"] == epoch
        assert RecipeConfig.model_validate_json((checkpoint / "recipe_config.json").read_text())
    # only the latest epoch is kept in the run's own checkpoints/ dir
    kept = sorted(p.name for p in (result.final_dir.parent / "checkpoints").iterdir())
    assert kept == ["epoch_2"]
    model = LlamaForCausalLM.from_pretrained(str(result.final_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(result.final_dir))
    assert model.config.vocab_size == len(tokenizer) == 500
    final = load_file(result.final_dir / "model.safetensors")
    last = load_file(reported / "epoch_2" / "model.safetensors")
    assert all(torch.equal(final[k], last[k]) for k in final)


def test_student_distils_from_two_teachers(
    teachers: list[TrainResult], make_config: MakeConfig, tmp_path: Path
):
    config = make_config(tmp_path, alpha=0.5, temperature=2.0, seed=5)
    result = train(config, teacher_dirs=[t.final_dir for t in teachers], progress=False)
    first, last = result.history
    assert set(first) == EPOCH_KEYS | {"train_kl"}
    assert last["train_kl"] < first["train_kl"]  # it moves towards the ensemble
    assert last["dev_loss"] < first["dev_loss"]
    assert first["train_loss"] == pytest.approx(
        0.5 * first["train_ce"] + 0.5 * first["train_kl"], rel=1e-5
    )
    info = json.loads((result.final_dir / "run_info.json").read_text())
    assert info["teacher_dirs"] == [str(t.final_dir) for t in teachers]


def test_alpha_one_loads_no_teacher(
    teachers: list[TrainResult], make_config: MakeConfig, tmp_path: Path
):
    recipe = TrainingRecipe(make_config(tmp_path, alpha=1.0), teacher_dirs=[teachers[0].final_dir])
    recipe.setup()
    assert recipe.teachers is None
    distilling = TrainingRecipe(
        make_config(tmp_path, alpha=0.5), teacher_dirs=[teachers[0].final_dir]
    )
    distilling.setup()
    assert distilling.teachers is not None and len(distilling.teachers) == 1


def test_resume_gives_the_same_final_weights(
    teachers: list[TrainResult], make_config: MakeConfig, tmp_path: Path
):
    # teachers[0] is the uninterrupted run: same config, seed 0, 2 epochs.
    kept = tmp_path / "kept_epoch_1"

    def keep_then_die(metrics: dict[str, float], checkpoint_dir: Path) -> None:
        shutil.copytree(checkpoint_dir, kept)
        raise Interrupted

    config = make_config(tmp_path / "run", seed=0)
    with pytest.raises(Interrupted):
        train(config, report=keep_then_die, progress=False)
    resumed = train(config, resume_from=kept, progress=False)
    assert [m["epoch"] for m in resumed.history] == [1.0, 2.0]
    assert resumed.history[1]["step"] == teachers[0].history[1]["step"]
    want = load_file(teachers[0].final_dir / "model.safetensors")
    got = load_file(resumed.final_dir / "model.safetensors")
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_gradient_accumulation_matches_one_big_batch(make_config: MakeConfig, tmp_path: Path):
    def one_step(name: str, **training: object) -> dict[str, torch.Tensor]:
        # eps=1 turns Adam into near-SGD: no amplified rounding noise on tiny gradients
        config = make_config(tmp_path / name, epochs=1, warmup_steps=0, eps=1.0, **training)
        two_steps_of_data = config.data.model_copy(update={"max_train_tokens": 32 * 32 + 31})
        config = config.model_copy(update={"data": two_steps_of_data})
        result = train(config, progress=False)
        assert result.metrics["step"] == 2
        return load_file(result.final_dir / "model.safetensors")

    whole = one_step("whole", batch_size=16)
    accumulated = one_step("accumulated", batch_size=16, micro_batch_size=5)  # 5+5+5+1 rows
    for name in whole:
        torch.testing.assert_close(accumulated[name], whole[name], rtol=0, atol=1e-7)


def test_nan_loss_names_epoch_and_step(
    teachers: list[TrainResult], make_config: MakeConfig, tmp_path: Path
):
    broken = tmp_path / "nan_teacher"
    shutil.copytree(teachers[0].final_dir, broken)
    model = LlamaForCausalLM.from_pretrained(str(broken))
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    model.save_pretrained(str(broken))
    with pytest.raises(NonFiniteLossError, match="at epoch 1, step 1") as caught:
        train(make_config(tmp_path / "run", alpha=0.5), teacher_dirs=[broken], progress=False)
    assert (caught.value.epoch, caught.value.step) == (1, 1)


def test_teacher_without_weights_is_refused(
    teachers: list[TrainResult], make_config: MakeConfig, tmp_path: Path
):
    hollow = tmp_path / "hollow"
    shutil.copytree(teachers[0].final_dir, hollow)
    (hollow / "model.safetensors").unlink()
    with pytest.raises(TrainerError, match=r"teacher .*hollow: no model weights"):
        train(make_config(tmp_path / "run", alpha=0.5), teacher_dirs=[hollow], progress=False)
    with pytest.raises(TrainerError, match=r"teacher .*nowhere: no such directory"):
        train(make_config(tmp_path / "run"), teacher_dirs=[tmp_path / "nowhere"], progress=False)


def test_teacher_with_another_vocab_is_refused(
    teachers: list[TrainResult],
    make_config: MakeConfig,
    micro_model: ModelConfig,
    small_corpus: DataConfig,
    tmp_path: Path,
):
    other = prepare_corpus(small_corpus.model_copy(update={"vocab_size": 400}), splits=())
    tokenizer = load_tokenizer(other.tokenizer_dir)
    alien = tmp_path / "alien"
    model = build_model(
        micro_model, vocab_size=len(tokenizer), bos_id=1, eos_id=2, pad_id=0, seq_length=32
    )
    model.save_pretrained(str(alien))
    tokenizer.save_pretrained(str(alien))
    with pytest.raises(TrainerError, match=r"teacher .*alien: its tokenizer \(vocab 400\) differs"):
        train(
            make_config(tmp_path / "run", alpha=0.5),
            teacher_dirs=[teachers[0].final_dir, alien],
            progress=False,
        )


def test_seq_length_beyond_positions_is_refused(
    make_config: MakeConfig, prepared: PreparedCorpus, tmp_path: Path
):
    config = make_config(tmp_path)
    too_long = config.model_copy(
        update={"data": config.data.model_copy(update={"seq_length": 128})}
    )
    with pytest.raises(TrainerError, match=r"data\.seq_length: 128 exceeds the model's 64"):
        train(too_long, progress=False)


def test_missing_corpus_split_is_refused(make_config: MakeConfig, tmp_path: Path):
    corpus = tmp_path / "corpus"
    (corpus / "train").mkdir(parents=True)
    (corpus / "train" / "a.train").write_text("once upon a time\n" * 50)
    config = make_config(tmp_path / "run")
    config = config.model_copy(update={"data": config.data.model_copy(update={"corpus": corpus})})
    with pytest.raises(TrainerError, match=r"data\.corpus: .*corpus/dev does not exist"):
        train(config, progress=False)
