"""trainers.data: the BPE tokenizer, the shared token cache and the training windows."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from trainers.config import DataConfig
from trainers.data import (
    PreparedCorpus,
    TrainWindows,
    eval_windows,
    prepare_corpus,
    split_tokens,
)
from trainers.errors import TrainerError

SliceCorpus = Callable[..., Path]


def test_tokenizer_round_trips_corpus_text(prepared: PreparedCorpus, data_config: DataConfig):
    tokenizer = AutoTokenizer.from_pretrained(str(prepared.tokenizer_dir))
    assert len(tokenizer) == data_config.vocab_size
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    dev_file = data_config.corpus / "dev" / "fairy_tales.dev"
    text = dev_file.read_text(encoding="utf-8")[:2000]
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text.encode()) / 2  # BPE merges compress the bytes
    assert tokenizer.decode(tokenizer.encode("naïve café!", add_special_tokens=False)) == (
        "naïve café!"
    )


def test_token_stream_is_documents_after_bos(prepared: PreparedCorpus, data_config: DataConfig):
    tokenizer = AutoTokenizer.from_pretrained(str(prepared.tokenizer_dir))
    stream = np.load(prepared.token_files["dev"], mmap_mode="r")
    first_line = (data_config.corpus / "dev" / "childes.dev").read_text().splitlines()[0]
    expected = [tokenizer.bos_token_id, *tokenizer.encode(first_line, add_special_tokens=False)]
    assert stream[: len(expected)].tolist() == expected


def test_second_prepare_reuses_the_cache(data_config: DataConfig, tmp_path: Path):
    # An empty cache of its own: the session's cache may already be filled by other tests.
    data = data_config.model_copy(update={"cache_dir": tmp_path / "cache"})
    first = prepare_corpus(data)
    assert first.built == ("tokenizer", *first.token_files)  # everything trained and tokenized
    assert set(first.token_files) >= {"train", "dev"}
    stamps = {s: p.stat().st_mtime_ns for s, p in first.token_files.items()}
    again = prepare_corpus(data)
    assert again.built == ()
    assert again.tokenizer_dir == first.tokenizer_dir
    assert {s: p.stat().st_mtime_ns for s, p in again.token_files.items()} == stamps


def test_train_cap_keeps_every_source(prepared: PreparedCorpus, data_config: DataConfig):
    full = np.load(prepared.token_files["train"], mmap_mode="r")
    capped = split_tokens(data_config, "train", prepared.tokenizer_dir)
    assert abs(len(capped) - data_config.max_train_tokens) <= 2
    # both sources contribute: the slice holds the start of the stream and of the 2nd source
    assert np.array_equal(capped[:100], full[:100])
    assert len(capped) < len(full)


def _build_in_process(corpus: str, cache: str, queue: multiprocessing.Queue) -> None:
    data = DataConfig(
        root=Path(corpus).parent, corpus=Path(corpus), vocab_size=300, cache_dir=Path(cache)
    )
    result = prepare_corpus(data)
    queue.put({s: str(p) for s, p in result.token_files.items()})


def test_parallel_builds_agree_and_tokenizer_is_deterministic(
    slice_corpus: SliceCorpus, tmp_path: Path, child_processes: Callable[..., BaseProcess]
):
    corpus = slice_corpus(tmp_path / "corpus")
    # forked: spawn would re-import torch, 10 s more
    queue = multiprocessing.get_context("fork").Queue()
    workers = [
        child_processes("fork", _build_in_process, str(corpus), str(tmp_path / "shared"), queue)
        for _ in range(2)
    ]
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    first, second = queue.get(), queue.get()
    assert first == second
    # an independent build in another cache gives identical bytes: deterministic
    alone = prepare_corpus(
        DataConfig(root=tmp_path, corpus=corpus, vocab_size=300, cache_dir=tmp_path / "alone")
    )
    for split, path in alone.token_files.items():
        assert np.array_equal(np.load(path), np.load(first[split]))
    shared_tokenizer = Path(first["train"]).parents[1] / "tokenizers"
    (built,) = [p for p in shared_tokenizer.iterdir() if p.is_dir()]  # no leftover temp dirs
    assert (built / "tokenizer.json").read_bytes() == (
        alone.tokenizer_dir / "tokenizer.json"
    ).read_bytes()
    assert not list((tmp_path / "shared" / "tokens").glob("*.npy.*"))


def test_train_windows_shift_each_epoch_and_repeat_per_seed():
    tokens = np.arange(1000, dtype=np.uint16)
    windows = TrainWindows(tokens, seq_length=10, seed=3)
    assert windows.num_windows == 99
    epoch1 = np.concatenate([b.numpy() for b in windows.epoch_batches(1, batch_size=8)])
    again = np.concatenate([b.numpy() for b in TrainWindows(tokens, 10, 3).epoch_batches(1, 8)])
    assert np.array_equal(epoch1, again)
    assert epoch1.shape == (99, 10)
    # each window is a contiguous run of the stream
    assert (np.diff(epoch1, axis=1) == 1).all()
    offsets = set()
    for epoch in range(1, 8):
        batch = next(TrainWindows(tokens, 10, 3).epoch_batches(epoch, 99)).numpy()
        offsets.add(int(batch[0, 0]) % 10)
    assert len(offsets) > 1
    assert eval_windows(tokens, 10)[:, 0].tolist() == list(range(0, 1000, 10))


def test_missing_or_empty_split_is_refused(slice_corpus: SliceCorpus, tmp_path: Path):
    no_dev = slice_corpus(tmp_path / "no_dev", drop="dev")
    with pytest.raises(TrainerError, match=r"data\.corpus: .*no_dev/dev does not exist"):
        prepare_corpus(DataConfig(corpus=no_dev, vocab_size=300, cache_dir=tmp_path / "c"))
    empty = slice_corpus(tmp_path / "empty_train")
    for path in (empty / "train").iterdir():
        path.write_text("")
    with pytest.raises(TrainerError, match=r"empty_train/train holds no non-empty \*\.train"):
        prepare_corpus(DataConfig(corpus=empty, vocab_size=300, cache_dir=tmp_path / "c"))


def test_reference_tokenizer_options_have_their_own_cache(small_corpus: DataConfig):
    """add_prefix_space + min_frequency (BabyLlama-2's tokenizer) build another tokenizer."""
    import json

    from trainers.data import load_tokenizer

    plain = prepare_corpus(small_corpus)
    reference = prepare_corpus(
        small_corpus.model_copy(update={"add_prefix_space": True, "min_frequency": 2})
    )
    assert reference.tokenizer_dir != plain.tokenizer_dir
    assert set(reference.token_files.values()).isdisjoint(plain.token_files.values())
    spec = json.loads((reference.tokenizer_dir / "tokenizer.json").read_text())
    assert spec["pre_tokenizer"]["add_prefix_space"] is True
    with_space, without = (
        load_tokenizer(reference.tokenizer_dir),
        load_tokenizer(plain.tokenizer_dir),
    )
    # a document's first word gets its mid-sentence token (with the byte-level space, "Ġ")
    assert with_space.tokenize("the cat")[0].startswith("Ġ")
    assert not without.tokenize("the cat")[0].startswith("Ġ")
    assert with_space.tokenize("the cat") == with_space.tokenize(" the cat")
    # min_frequency reaches the BPE trainer: no pair is that frequent, so nothing is merged
    rare = prepare_corpus(small_corpus.model_copy(update={"min_frequency": 10**9}))
    assert json.loads((rare.tokenizer_dir / "tokenizer.json").read_text())["model"]["merges"] == []
    assert json.loads((plain.tokenizer_dir / "tokenizer.json").read_text())["model"]["merges"]
    # the defaults keep the cache key caches already hold
    assert "prefix" not in plain.tokenizer_dir.name and "minf" not in plain.tokenizer_dir.name
    assert "-prefix-minf2-" in reference.tokenizer_dir.name
