"""Fixtures for the trainers tests: one tokenizer + token cache and two tiny teachers per session.

Everything is real (the babylm-mini corpus, BPE training, LLaMA models), only small: a
500-token vocab, 32-token windows, 30k training tokens and a ~100k-parameter model, on
one CPU thread so runs are reproducible and leave the machine's other core alone.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tests.trainers.task_files import train_tiny_checkpoint
from trainers.config import DataConfig, ModelConfig, RecipeConfig, TrainingConfig
from trainers.data import PreparedCorpus, prepare_corpus
from trainers.recipe import TrainResult, train

torch.set_num_threads(1)

SLICE_BYTES = 150_000  # per source file in the sliced corpora of the data tests


def _slice_corpus(data_root: Path, target: Path, *, drop: str | None = None) -> Path:
    for split in ("train", "dev", "test"):
        if split == drop:
            continue
        (target / split).mkdir(parents=True)
        for source in sorted((data_root / "babylm-mini" / split).iterdir()):
            text = source.read_bytes()[:SLICE_BYTES].decode("utf-8", errors="ignore")
            (target / split / source.name).write_text(text, encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def data_config(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    return DataConfig(
        root=data_root,
        vocab_size=500,
        seq_length=32,
        max_train_tokens=30_000,
        max_eval_tokens=4_000,
        cache_dir=tmp_path_factory.mktemp("cache"),
    ).resolved()


@pytest.fixture(scope="session")
def slice_corpus(data_root: Path) -> Callable[..., Path]:
    """slice_corpus(target, drop=None): a BabyLM-layout copy of each real file's first bytes."""
    return lambda target, drop=None: _slice_corpus(data_root, target, drop=drop)


@pytest.fixture(scope="session")
def small_corpus(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    """A 300 kB slice of babylm-mini, for tests that build their own tokenizer."""
    root = tmp_path_factory.mktemp("small")
    corpus = _slice_corpus(data_root, root / "corpus")
    return DataConfig(root=root, corpus=corpus, vocab_size=300, cache_dir=root / "cache")


@pytest.fixture(scope="session")
def prepared(data_config: DataConfig) -> PreparedCorpus:
    return prepare_corpus(data_config)


@pytest.fixture(scope="session")
def micro_model() -> ModelConfig:
    """Smaller than the tiny preset: the tests need a model that learns, not a good one."""
    return ModelConfig(
        preset=None,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        max_position_embeddings=64,
        tie_embeddings=False,
    )


def recipe_config(
    data: DataConfig, model: ModelConfig, output_dir: Path, **training: object
) -> RecipeConfig:
    """The tests' recipe: 2 epochs of the capped slice on one CPU thread."""
    defaults: dict[str, object] = dict(
        epochs=2, lr=5e-3, batch_size=16, warmup_steps=5, threads=1, device="cpu"
    )
    defaults.update(training)
    return RecipeConfig(
        data=data,
        model=model,
        training=TrainingConfig(**defaults),  # type: ignore[arg-type]
        output_dir=output_dir,
    )


@pytest.fixture(scope="session")
def make_config(data_config: DataConfig, micro_model: ModelConfig) -> Callable[..., RecipeConfig]:
    """make_config(output_dir, **training) -> RecipeConfig on the session's data and model."""

    def make(output_dir: Path, **training: object) -> RecipeConfig:
        return recipe_config(data_config, micro_model, output_dir, **training)

    return make


@pytest.fixture(scope="session")
def teachers(
    prepared: PreparedCorpus,
    data_config: DataConfig,
    micro_model: ModelConfig,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[TrainResult]:
    """Two tiny teachers (seeds 0 and 1), 2 epochs each, with every epoch's report kept."""
    results = []
    for seed in (0, 1):
        out = tmp_path_factory.mktemp(f"teacher{seed}")
        kept = out / "reported"

        def keep(metrics: dict[str, float], checkpoint_dir: Path, kept: Path = kept) -> None:
            shutil.copytree(checkpoint_dir, kept / f"epoch_{int(metrics['epoch'])}")

        config = recipe_config(data_config, micro_model, out / "run", seed=seed)
        results.append(train(config, report=keep, progress=False))
    return results


@pytest.fixture(scope="session")
def tiny_checkpoint(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny LLaMA: 500-token BPE, 2 layers of width 32, one epoch of ~10k tokens."""
    return train_tiny_checkpoint(data_root, tmp_path_factory.mktemp("glue_ckpt"))


@pytest.fixture(scope="module")
def glue(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.glue in the official layout: the real MRPC/ and RTE/ of the data root beside
    small hand-written files for every other BabyLM task (tests/trainers/task_files.py)."""
    from tests.trainers import task_files

    glue = tmp_path_factory.mktemp("tasks") / "glue"
    task_files.link_real_glue(data_root, glue)
    task_files.write_glue_tasks(glue)
    return glue
