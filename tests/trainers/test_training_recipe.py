"""trainers.recipe.train: teachers, students, checkpoints, resume and bad input."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaForCausalLM

from trainers.config import DataConfig, ModelConfig, RecipeConfig
from trainers.data import (
    PreparedCorpus,
    RandomChunkWindows,
    load_tokenizer,
    prepare_corpus,
    split_tokens,
)
from trainers.errors import NonFiniteLossError, TrainerError
from trainers.losses import distillation_loss
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


def test_checkpoint_best_hands_on_the_earlier_better_epoch(
    make_config: MakeConfig, data_config: DataConfig, tmp_path: Path
):
    """3k training tokens at a constant lr 0.02 overfit: epochs 4 and 5 are worse than 3."""
    from trainers.evaluate import evaluate_loss

    data = data_config.model_copy(update={"max_train_tokens": 3000})
    reported: list[Path] = []

    def keep(metrics: dict[str, float], checkpoint_dir: Path) -> None:
        reported.append(
            shutil.copytree(checkpoint_dir, tmp_path / f"epoch_{int(metrics['epoch'])}")
        )

    runs = {}
    for checkpoint in ("best", "last"):
        config = make_config(
            tmp_path / checkpoint,
            epochs=5,
            lr=0.02,
            batch_size=4,
            warmup_steps=0,
            schedule="constant",
            checkpoint=checkpoint,
        )
        config = config.model_copy(update={"data": data})
        runs[checkpoint] = train(
            config, report=keep if checkpoint == "best" else None, progress=False
        )
    best, last = runs["best"], runs["last"]
    dev = [m["dev_loss"] for m in best.history]
    assert dev == [m["dev_loss"] for m in last.history]  # the choice does not change training
    best_epoch = dev.index(min(dev)) + 1
    assert best_epoch < 4 and dev[-1] > min(dev), f"precondition: later epochs are worse ({dev})"

    assert best.metrics["checkpoint_epoch"] == best_epoch
    assert best.metrics["checkpoint_dev_loss"] == min(dev)
    assert best.metrics["dev_loss"] == dev[-1]  # the curve stays truthful
    # what is handed on (final/ and the last report's checkpoint) is the earlier epoch's model
    for handed_on in (best.final_dir, reported[-1]):
        assert evaluate_loss(handed_on, data, "dev") == pytest.approx(min(dev), rel=1e-5)
    assert best.metrics["test_loss"] == pytest.approx(
        evaluate_loss(best.final_dir, data, "test"), rel=1e-5
    )
    # a checkpoint after the best epoch carries its weights, so a resumed run hands them on
    assert (reported[3] / "best_model" / "model.safetensors").is_file()
    assert not (reported[-1] / "best_model").exists()
    resumed = train(
        make_config(
            tmp_path / "resumed",
            epochs=5,
            lr=0.02,
            batch_size=4,
            warmup_steps=0,
            schedule="constant",
            checkpoint="best",
        ).model_copy(update={"data": data}),
        resume_from=reported[3],
        progress=False,
    )
    assert resumed.metrics["checkpoint_epoch"] == best_epoch
    want = load_file(best.final_dir / "model.safetensors")
    got = load_file(resumed.final_dir / "model.safetensors")
    assert all(torch.equal(want[k], got[k]) for k in want)
    # checkpoint: last hands on the last epoch, scored on the test split the same way
    assert last.metrics["checkpoint_epoch"] == 5
    assert evaluate_loss(last.final_dir, data, "dev") == pytest.approx(dev[-1], rel=1e-5)
    assert last.metrics["test_loss"] == pytest.approx(
        evaluate_loss(last.final_dir, data, "test"), rel=1e-5
    )
    assert best.metrics["test_loss"] != last.metrics["test_loss"]


def test_babyllama2_example_is_the_reference_objective_and_trains(
    data_root: Path, micro_model: ModelConfig, tmp_path: Path
):
    """examples/babyllama2-345m.yaml: betas, KL reduction, tokenizer, checkpoint best; a tiny
    teacher and a student distilling from it with the example's training settings."""
    from sweep.config import load_sweep_config

    repo = Path(__file__).resolve().parents[2]
    example = load_sweep_config(repo / "examples" / "babyllama2-345m.yaml")
    training, data = example.training, example.data
    assert (training.beta1, training.beta2) == (0.9, 0.999)
    assert training.kl_reduction == "babyllama2" and training.alpha == 0.5
    assert training.checkpoint == "best"
    assert training.checkpoint_metric == "dev_distillation_loss"
    assert (data.add_prefix_space, data.min_frequency) == (True, 2)
    assert data.pipeline == "babyllama2"
    assert data.blimp_convention == "lm_eval"
    # the same settings at micro scale, on CPU
    tiny_data = data.model_copy(
        update={
            "vocab_size": 400,
            "seq_length": 32,
            "max_train_tokens": 6000,
            "max_eval_tokens": 2000,
            "cache_dir": tmp_path / "cache",
        }
    )
    tiny_training = training.model_copy(
        update={
            "epochs": 2,
            "batch_size": 8,
            "micro_batch_size": 4,
            "warmup_steps": 2,
            "lr": 3e-3,
            "device": "cpu",
            "compile": False,
            "threads": 1,
        }
    )
    teacher = train(
        RecipeConfig(
            data=tiny_data,
            model=micro_model,
            training=tiny_training.model_copy(update={"alpha": 1.0}),
            output_dir=tmp_path / "teacher",
        ),
        progress=False,
    )
    recipe = TrainingRecipe(
        RecipeConfig(
            data=tiny_data,
            model=micro_model,
            training=tiny_training,
            output_dir=tmp_path / "student",
        ),
        teacher_dirs=[teacher.final_dir],
        progress=False,
    )
    recipe.setup()
    assert recipe.optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    # trained with the prefix space, encoding without it (the reference's GPT2TokenizerFast)
    assert not recipe.tokenizer.tokenize("once upon")[0].startswith("Ġ")
    assert recipe.tokenizer.tokenize(" once upon")[0].startswith("Ġ")
    assert isinstance(recipe.train_windows, RandomChunkWindows)
    assert recipe.steps_per_epoch == -(-recipe.train_windows.num_windows // 8)
    student = recipe.train()
    assert student.metrics["train_kl"] > 0
    # it learns: well below a uniform guess over the 400-token vocabulary (ln 400 = 5.99)
    assert student.history[-1]["dev_loss"] < math.log(400) - 0.5
    assert student.metrics["test_loss"] > 0
    # checkpoint best selects on the distillation objective on dev, the reference's eval loss
    objective = {int(m["epoch"]): m["dev_distillation_loss"] for m in student.history}
    assert student.metrics["checkpoint_epoch"] == min(objective, key=lambda e: (objective[e], e))
    assert objective[1] != student.history[0]["dev_loss"]  # not the CE under another name
    # ... and is alpha CE + (1 - alpha) KL (babyllama2 reduction) of full logits, per window
    assert recipe.teachers is not None
    windows = torch.from_numpy(recipe.dev_windows)
    recipe.student.eval()
    with torch.no_grad():
        oracle = distillation_loss(
            recipe.student(input_ids=windows).logits,
            windows,
            recipe.teachers.logits(windows),
            alpha=0.5,
            kl_reduction="babyllama2",
        ).loss.item()
    assert recipe.evaluate_distillation() == pytest.approx(oracle, rel=1e-5)
    handed_on = objective[int(student.metrics["checkpoint_epoch"])]
    assert recipe.evaluate_distillation() == pytest.approx(handed_on, rel=1e-5)
    assert (
        json.loads((student.final_dir / "recipe_config.json").read_text())["training"][
            "kl_reduction"
        ]
        == "babyllama2"
    )


def test_dev_evaluations_within_epochs_change_nothing_trained(
    teachers: list[TrainResult], make_config: MakeConfig, data_config: DataConfig, tmp_path: Path
):
    """eval_every: dev loss every k optimizer steps, scored on the live model, training unchanged."""
    k = 20
    kept: dict[int, dict[str, torch.Tensor]] = {}
    points: list[tuple[int, int, float]] = []
    recipe: list[TrainingRecipe] = []

    def keep(step: int, losses: dict[str, float]) -> None:
        if step == k:  # on_step runs before that step's evaluation: the weights it scores
            kept[step] = {n: t.detach().clone() for n, t in recipe[0].student.state_dict().items()}

    config = make_config(tmp_path / "run", seed=0)  # teachers[0]'s config
    recipe.append(TrainingRecipe(config, progress=False))
    recipe[0].on_step = keep
    recipe[0].eval_every, recipe[0].on_eval = k, lambda s, t, v: points.append((s, t, v))
    recipe[0].setup()
    result = recipe[0].train()

    # the same run as without evaluations: same weights, same epoch metrics
    want = load_file(teachers[0].final_dir / "model.safetensors")
    got = load_file(result.final_dir / "model.safetensors")
    assert all(torch.equal(want[n], got[n]) for n in want)
    for ours, theirs in zip(result.history, teachers[0].history, strict=True):
        assert {n: v for n, v in ours.items() if n != "tokens_per_s"} == {
            n: v for n, v in theirs.items() if n != "tokens_per_s"
        }

    # every k steps, never at an epoch's end (that has its own evaluation)
    per_epoch = int(result.history[0]["step"])
    windows = int(result.history[0]["tokens_seen"]) // config.data.seq_length
    assert per_epoch == -(-windows // 16)
    steps = [s for s, _, _ in points]
    assert steps == [s for s in range(k, 2 * per_epoch, k) if s % per_epoch]
    # tokens seen: whole batches of 16 windows before it, plus the epochs before
    for step, tokens, _ in points:
        epochs_done, within = divmod(step, per_epoch)
        assert tokens == (epochs_done * windows + within * 16) * config.data.seq_length

    # the value at step k, independently: HF's own mean CE of the kept weights on all dev windows
    model = LlamaForCausalLM.from_pretrained(result.final_dir)  # its architecture
    model.load_state_dict(kept[k])
    model.eval()
    dev = split_tokens(config.data, "dev", tokenizer_dir=result.final_dir)
    n = len(dev) // config.data.seq_length
    ids = torch.from_numpy(np.asarray(dev[: n * config.data.seq_length], dtype=np.int64))
    with torch.no_grad():
        loss = model(input_ids=ids.view(n, -1), labels=ids.view(n, -1)).loss.item()
    assert points[0][2] == pytest.approx(loss, abs=1e-5)
    assert points[0][2] > result.history[0]["dev_loss"]  # still learning in epoch 1
