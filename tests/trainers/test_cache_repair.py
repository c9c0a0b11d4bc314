"""A damaged cache entry (issue 28) is found, rebuilt and named in one line, never a
traceback: a token .npy cut off, emptied, deleted or with a byte changed; its sidecar
deleted or cut off; tokenizer.json cut off or deleted. Each sidecar holds the .npy's size
and sha256, checked when the entry is found."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from trainers.config import DataConfig
from trainers.data import PreparedCorpus, prepare_corpus, split_tokens


def _cut(path: Path, size: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(size)


def _flip(path: Path) -> None:
    with path.open("r+b") as handle:
        handle.seek(path.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))


Damage = Callable[[PreparedCorpus], Path]
# (id, damage -> the damaged entry's path as the line names it, a piece of the line)
DAMAGE: list[tuple[str, Damage, str]] = [
    ("npy-cut-off", lambda p: (_cut(p.token_files["dev"], 1000), p.token_files["dev"])[1],
     "1,000 bytes where its sidecar says"),
    ("npy-empty", lambda p: (_cut(p.token_files["dev"], 0), p.token_files["dev"])[1],
     "0 bytes where its sidecar says"),
    ("npy-deleted", lambda p: (p.token_files["dev"].unlink(), p.token_files["dev"])[1],
     "the .npy is missing"),
    ("npy-byte-changed", lambda p: (_flip(p.token_files["dev"]), p.token_files["dev"])[1],
     "checksum differs"),
    ("sidecar-deleted",
     lambda p: (p.token_files["dev"].with_suffix(".json").unlink(), p.token_files["dev"])[1],
     "sidecar"),
    ("sidecar-cut-off",
     lambda p: (_cut(p.token_files["dev"].with_suffix(".json"), 7), p.token_files["dev"])[1],
     "unreadable"),
    ("tokenizer-cut-off",
     lambda p: (_cut(p.tokenizer_dir / "tokenizer.json", 100), p.tokenizer_dir)[1],
     "tokenizer.json does not load"),
    ("tokenizer-deleted",
     lambda p: ((p.tokenizer_dir / "tokenizer.json").unlink(), p.tokenizer_dir)[1],
     "tokenizer.json is missing"),
]  # fmt: skip


@pytest.fixture(scope="module")
def built_cache(small_corpus: DataConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenizer and token cache of the small corpus, copied for each case."""
    cache = tmp_path_factory.mktemp("cache-to-damage")
    prepare_corpus(small_corpus.model_copy(update={"cache_dir": cache}), splits=("train", "dev"))
    return cache


@pytest.mark.parametrize(("case", "damage", "needle"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_damaged_cache_entry_is_rebuilt_with_one_line(
    small_corpus: DataConfig,
    built_cache: Path,
    tmp_path: Path,
    case: str,
    damage: Damage,
    needle: str,
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache)
    data = small_corpus.model_copy(update={"cache_dir": cache})
    before = prepare_corpus(data, splits=("train", "dev"))
    assert before.built == () and before.repaired == ()
    expected_dev = np.load(before.token_files["dev"]).tolist()

    damaged = damage(before)
    after = prepare_corpus(data, splits=("train", "dev"))
    assert len(after.repaired) == 1, after.repaired
    line = after.repaired[0]
    assert line.startswith(f"cache: {damaged}: ") and needle in line, line
    assert line.endswith("rebuilt it") and "\n" not in line
    assert np.load(after.token_files["dev"]).tolist() == expected_dev  # the same tokens again
    sidecar = json.loads(after.token_files["dev"].with_suffix(".json").read_text())
    assert sidecar["bytes"] == after.token_files["dev"].stat().st_size
    assert len(split_tokens(data, "dev", after.tokenizer_dir)) > 0

    again = prepare_corpus(data, splits=("train", "dev"))
    assert again.built == () and again.repaired == ()  # repaired once, then trusted


def test_an_entry_from_before_checksums_is_kept_and_its_sidecar_completed(
    small_corpus: DataConfig, built_cache: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache)
    data = small_corpus.model_copy(update={"cache_dir": cache})
    dev = prepare_corpus(data, splits=("train", "dev")).token_files["dev"]
    sidecar_path = dev.with_suffix(".json")
    old = {
        k: v
        for k, v in json.loads(sidecar_path.read_text()).items()
        if k in ("files", "source_tokens")
    }
    sidecar_path.write_text(json.dumps(old))
    stamp = dev.stat().st_mtime_ns

    again = prepare_corpus(data, splits=("train", "dev"))
    assert again.built == () and again.repaired == ()
    assert dev.stat().st_mtime_ns == stamp  # not rebuilt
    assert json.loads(sidecar_path.read_text())["bytes"] == dev.stat().st_size
