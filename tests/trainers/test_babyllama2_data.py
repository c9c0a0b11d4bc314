"""`data.pipeline: babyllama2`: the reference's cleaning, tokenizer, document stream and windows.

The expected values are written out from the reference's rules (JLTastet/BabyLlama-2:
`mrclean.py`, `notebooks/cleaning_and_tokenization.ipynb`, `babylm_dataset.py`), not from
this code: cleaned text per source, the token stream of a hand-written corpus, the windows'
count and starts, and a tokenizer trained independently with the notebook's settings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from trainers.cleaning import CLEANED_MARKER, clean_text, cleaning_stamp
from trainers.config import DataConfig
from trainers.data import (
    RandomChunkWindows,
    TrainWindows,
    prepare_corpus,
    split_tokens,
    train_windows,
)
from trainers.errors import TrainerError

# (source, raw text, what the reference's cleaner for that source leaves)
CLEANING_CASES = [
    # childes (cleanup_aochildes): runs of spaces/tabs/nbsp -> one space, none before .,;!?
    ("childes", "you  want\tit ?\nyes\u00a0. \n", "you want it?\nyes. \n"),
    # bnc_spoken: the same, then every "\n\n" is replaced by the (empty) pad + start strings
    ("bnc_spoken", "well  ,  yes .\n\nno\n\n\nok\n", "well, yes.no\nok\n"),
    # cbt: the same as childes, then a space before 's / n't-style apostrophes is removed
    ("cbt", "the boy 's dog , said he .\ndo n't\n", "the boy's dog, said he.\ndo n't\n"),
    # simple_wiki: "\n\n" removed, nothing else
    ("simple_wiki", "Title\n\nText  one .\n\n\nTwo\n", "TitleText  one .\nTwo\n"),
    # wikipedia: "= = = h = = =\n" -> "h", lines stripped, first character dropped, "\n\n" removed
    (
        "wikipedia",
        "= = = History = = =\n  Some text .  \n\nMore\n",
        "istory  Some text .More",
    ),
    # qed: a mostly upper-case line gets l -> I and sentence case; lines stripped; no final \n
    (
        "qed",
        "HELLO WORLD. HOW ARE YOU?\nWELL, lT IS. \n  normal line  \n",
        "Hello world. How are you?\nWell, it is.\nnormal line",
    ),
    # open_subtitles: every line mentioning "subtitle" (any case) is dropped
    ("open_subtitles", "Subtitles by X\nHi.\nsee SUBTITLE credits\nBye.\n", "Hi.\nBye.\n"),
    # gutenberg, switchboard, children_stories: only the (empty) pad strings are added
    ("gutenberg", "a  b .\n\nc\n", "a  b .\n\nc\n"),
    ("switchboard", "A: uh  huh .\n\n", "A: uh  huh .\n\n"),
    ("children_stories", "Once  upon .\n\n", "Once  upon .\n\n"),
    # a source the reference has no cleaner for (it would stop): left as it is
    ("fairy_tales", "The  end .\n\n", "The  end .\n\n"),
]


@pytest.mark.parametrize(("source", "raw", "cleaned"), CLEANING_CASES, ids=lambda v: v[:12])
def test_cleaning_follows_the_reference_rules_per_source(source: str, raw: str, cleaned: str):
    assert clean_text(source, raw) == cleaned


def _write_corpus(root: Path, files: dict[str, str]) -> Path:
    """files: "split/name" -> text; a BabyLM-layout corpus under root/corpus."""
    corpus = root / "corpus"
    for name, text in files.items():
        path = corpus / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return corpus


def _reference_data(corpus: Path, cache: Path, **update: object) -> DataConfig:
    settings: dict[str, object] = {
        "root": corpus.parent,
        "corpus": corpus,
        "pipeline": "babyllama2",
        "vocab_size": 300,
        "add_prefix_space": True,  # the notebook's ByteLevel(add_prefix_space=True)
        "min_frequency": 2,  # the notebook's BpeTrainer(min_frequency=2)
        "seq_length": 8,
        "cache_dir": cache,
    }
    settings.update(update)
    return DataConfig.model_validate(settings).resolved()


def test_stream_is_each_cleaned_file_encoded_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    corpus = _write_corpus(
        tmp_path,
        {
            "train/childes.train": "hi  there .\nyo\n",
            "train/fairy_tales.train": "an elf\n\nsat\n",
            "dev/childes.dev": "yo .\n",
            "test/childes.test": "hi\n",
        },
    )
    # min_frequency out of reach: no merges, so every token is one byte-level character
    data = _reference_data(corpus, tmp_path / "cache", min_frequency=10**9)
    prepared = prepare_corpus(data)
    assert "no cleaner for fairy_tales" in caplog.text  # said when a split holding it is cleaned
    spec = json.loads((prepared.tokenizer_dir / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    # the files in name order, childes cleaned; "Ċ" is the newline, "Ġ" a space; the first
    # word of a file has no space (GPT2TokenizerFast encodes without the prefix space)
    expected = [
        *["h", "i", "Ġ", "t", "h", "e", "r", "e", ".", "Ċ", "y", "o", "Ċ"],  # "hi there.\nyo\n"
        *["a", "n", "Ġ", "e", "l", "f", "Ċ", "Ċ", "s", "a", "t", "Ċ"],  # "an elf\n\nsat\n"
    ]
    stream = np.load(prepared.token_files["train"]).tolist()
    assert stream == [vocab[t] for t in expected]
    assert vocab["<s>"] not in stream
    assert np.load(prepared.token_files["dev"]).tolist() == [vocab[t] for t in "yo.Ċ"]
    # the alphabet is the corpus's characters only, after the three specials
    assert sorted(vocab, key=vocab.get)[:3] == ["<pad>", "<s>", "</s>"]
    assert set(vocab) - {"<pad>", "<s>", "</s>"} == set("hiĠtere.Ċyoanlfs")
    assert spec["model"]["merges"] == []
    assert spec["pre_tokenizer"]["add_prefix_space"] is False


def test_windows_count_and_starts_follow_the_reference():
    length, tokens = 10, np.arange(1009, dtype=np.uint16)
    windows = RandomChunkWindows(tokens, length, seed=7)
    assert windows.num_windows == 1009 // 10 - 1 == 99  # babysweep's grid: (1009 - 9) // 10
    assert TrainWindows(tokens, length, seed=7).num_windows == 100
    offsets_by_epoch = []
    for epoch in (1, 2, 3):
        rows = np.concatenate([b.numpy() for b in windows.epoch_batches(epoch, batch_size=16)])
        assert rows.shape == (99, 10)
        assert (np.diff(rows, axis=1) == 1).all()  # contiguous runs of the stream
        starts = rows[:, 0]
        assert np.array_equal(starts, windows.window_starts(epoch))
        # window i starts at i * L + o with o in [0, L): every i once per epoch
        assert sorted((starts // length).tolist()) == list(range(99))
        offsets = dict(zip((starts // length).tolist(), (starts % length).tolist(), strict=True))
        assert len(set(offsets.values())) > 1  # an offset per window, not one per grid
        offsets_by_epoch.append(offsets)
        again = RandomChunkWindows(tokens, length, seed=7).window_starts(epoch)
        assert np.array_equal(again, starts)  # reproducible from (seed, epoch)
    # a fresh offset at every fetch: the same window moves between epochs
    moved = sum(offsets_by_epoch[0][i] != offsets_by_epoch[1][i] for i in range(99))
    assert moved > 50
    assert not np.array_equal(
        RandomChunkWindows(tokens, length, seed=8).window_starts(1), windows.window_starts(1)
    )
    with pytest.raises(TrainerError, match="do not fill two windows"):
        RandomChunkWindows(np.arange(19), 10, seed=0)


def test_pipeline_chooses_the_windows(tmp_path: Path):
    text = "the cat sat on the mat .\n" * 40
    corpus = _write_corpus(
        tmp_path,
        {"train/childes.train": text, "dev/childes.dev": text, "test/childes.test": text},
    )
    data = _reference_data(corpus, tmp_path / "cache")
    prepared = prepare_corpus(data)
    tokens = split_tokens(data, "train", prepared.tokenizer_dir)
    windows = train_windows(data, tokens, seed=0)
    assert isinstance(windows, RandomChunkWindows)
    assert windows.num_windows == len(tokens) // 8 - 1
    default = data.model_copy(update={"pipeline": "babysweep"})
    assert type(train_windows(default, tokens, seed=0)) is TrainWindows
    # the default pipeline keeps the cache keys it had; babyllama2's are its own
    plain = prepare_corpus(default)
    assert re.fullmatch(r"bpe300-prefix-minf2-[0-9a-f]{16}-v1", plain.tokenizer_dir.name)
    assert re.fullmatch(r"train-[0-9a-f]{16}-[0-9a-f]{16}-v1\.npy", plain.token_files["train"].name)
    assert "-babyllama2-" in prepared.tokenizer_dir.name
    assert prepared.token_files["train"].name.startswith("train-whole-")


def test_tokenizer_is_the_reference_trainers_on_the_cleaned_train_files(
    small_corpus: DataConfig, tmp_path: Path
):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    data = _reference_data(Path(small_corpus.corpus), tmp_path / "cache", vocab_size=500)
    prepared = prepare_corpus(data, splits=())
    # the notebook's recipe, built here with the tokenizers library alone
    cleaned = tmp_path / "cleaned"
    cleaned.mkdir()
    for path in sorted((Path(small_corpus.corpus) / "train").glob("*.train")):
        text = clean_text(path.stem, path.read_text(encoding="utf-8"))
        (cleaned / path.name).write_text(text, encoding="utf-8")
    expected = Tokenizer(models.BPE())
    expected.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    expected.decoder = decoders.ByteLevel()
    expected.normalizer = normalizers.NFKC()
    trainer = trainers.BpeTrainer(
        vocab_size=500, min_frequency=2, special_tokens=["<pad>", "<s>", "</s>"]
    )
    expected.train([str(p) for p in sorted(cleaned.iterdir())], trainer)

    ours = Tokenizer.from_file(str(prepared.tokenizer_dir / "tokenizer.json"))
    assert ours.get_vocab() == expected.get_vocab()
    assert (
        json.loads(ours.to_str())["model"]["merges"]
        == json.loads(expected.to_str())["model"]["merges"]
    )
    # no initial alphabet: a byte the corpus never holds has no token (babysweep's has all 256)
    assert "~" not in "".join(p.read_text() for p in cleaned.iterdir())
    assert "~" not in ours.get_vocab()


def test_a_corpus_cleaned_by_prepare_is_not_cleaned_again(tmp_path: Path):
    raw = {
        "train/childes.train": "you  want it ?\n" * 30,
        "dev/childes.dev": "no  .\n",
        "test/childes.test": "yes  .\n",
    }
    corpus = _write_corpus(tmp_path / "raw", raw)
    cleaned = _write_corpus(
        tmp_path / "clean", {name: clean_text("childes", text) for name, text in raw.items()}
    )
    (cleaned / CLEANED_MARKER).write_text(json.dumps(cleaning_stamp()))
    from_raw = prepare_corpus(_reference_data(corpus, tmp_path / "cache"))
    from_clean = prepare_corpus(_reference_data(cleaned, tmp_path / "cache"))
    assert "cleaned train" in from_raw.built and "cleaned train" not in from_clean.built
    # the same text either way: the same tokenizer and streams (content-keyed, so one cache)
    assert from_clean.tokenizer_dir == from_raw.tokenizer_dir
    for split in ("train", "dev", "test"):
        assert np.array_equal(
            np.load(from_clean.token_files[split]), np.load(from_raw.token_files[split])
        )
