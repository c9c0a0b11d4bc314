"""Property-based fuzzing of the data a sweep reads (issue 28): a corpus, BLiMP or GLUE file
replaced by random bytes, cut off, emptied, deleted or with bytes spliced in, and a token
cache entry (.npy, its sidecar, tokenizer.json) damaged the same ways.

Data: `sweep validate` and `sweep data check` exit 0 or 2, never with a traceback; `run`
refuses what validate refuses, with the same lines, writing nothing, and reaches the store
(replaced by a stop sign) with what validate accepts. Caches: `prepare_corpus` rebuilds a
damaged entry, says so in at most one line per entry, and gives the same tokens.
Run with --hypothesis-show-statistics for the outcome classes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sweep.cli import app
from trainers.config import DataConfig
from trainers.data import prepare_corpus

REPO = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((REPO / "sweep.yaml").read_text())
DATA_EXAMPLES = 40  # each runs validate, run and data check on a whole data root
CACHE_EXAMPLES = 12  # a damaged tokenizer is retrained (seconds on the small corpus)

TARGETS = [
    "babylm-mini/train/childes.train",
    "babylm-mini/train/fairy_tales.train",
    "babylm-mini/dev/childes.dev",
    "babylm-mini/test/fairy_tales.test",
    "blimp/adjunct_island.jsonl",
    "blimp/wh_island.jsonl",
    "glue/MRPC/train.tsv",
    "glue/RTE/dev.tsv",
]

DAMAGE = st.one_of(
    st.tuples(st.just("random-bytes"), st.binary(max_size=400)),
    st.tuples(st.just("truncate"), st.integers(0, 5_000)),
    st.tuples(st.just("empty")),
    st.tuples(st.just("delete")),
    st.tuples(st.just("splice"), st.integers(0, 10**9), st.binary(min_size=1, max_size=8)),
)


def _damage(path: Path, damage: tuple[Any, ...]) -> None:
    """Replace `path` (a link into the shared data, or a cache file) by its damaged copy."""
    kind, *args = damage
    original = path.read_bytes() if kind in ("truncate", "splice") else b""
    path.unlink()
    if kind == "delete":
        return
    if kind == "random-bytes":
        content = args[0]
    elif kind == "truncate":
        content = original[: args[0]]
    elif kind == "splice":
        at = args[0] % (len(original) + 1)
        content = original[:at] + args[1] + original[at:]
    else:
        content = b""
    path.write_bytes(content)


def _data_root(target: Path, data: Path) -> Path:
    for folder in ("babylm-mini/train", "babylm-mini/dev", "babylm-mini/test", "blimp",
                   "glue/MRPC", "glue/RTE"):  # fmt: skip
        (target / folder).mkdir(parents=True)
        for f in (data / folder).iterdir():
            (target / folder / f.name).symlink_to(f)
    return target


class _ReachedTheStore(Exception):
    """`sweep run` got past every check to the point where it opens the store."""


def _stop_at_the_store(*args: Any, **kwargs: Any) -> None:
    raise _ReachedTheStore


@pytest.fixture(scope="module")
def stop_at_the_store() -> Iterator[None]:
    with mock.patch("sweep.study.Store", _stop_at_the_store):
        yield


def _classify(output: str) -> str:
    for needle, label in [
        ("not utf-8 text", "refused: not UTF-8"),
        ("only whitespace", "refused: whitespace-only split"),
        ("not a blimp pair", "refused: not a BLiMP pair"),
        ("no minimal pairs", "refused: BLiMP file without pairs"),
        ("holds no non-empty", "refused: empty split"),
        ("tab-separated fields", "refused: GLUE row"),
        ("header lacks", "refused: GLUE header"),
        ("unknown label", "refused: GLUE label"),
        ("is missing", "refused: file missing"),
        ("no rows", "refused: GLUE no rows"),
    ]:
        if needle in output.lower():
            return label
    return "refused: other data check"


@pytest.mark.slow  # about 150 s on 2 busy cores: each example checks a whole data root 3 times
@settings(
    max_examples=DATA_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(target=st.sampled_from(TARGETS), damage=DAMAGE)
def test_damaged_data_is_valid_or_one_clean_refusal(
    stop_at_the_store: None, data_root: Path, target: str, damage: tuple[Any, ...]
) -> None:
    work = Path(tempfile.mkdtemp(prefix="data-fuzz-"))
    try:
        root = _data_root(work / "data", data_root)
        _damage(root / target, damage)
        doc = dict(DEFAULT, data={**DEFAULT["data"], "root": str(root)})
        sweep_dir = work / "sweep"
        sweep_dir.mkdir()
        (sweep_dir / "sweep.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        runner = CliRunner()
        checked = runner.invoke(app, ["validate", str(sweep_dir / "sweep.yaml")])
        ran = runner.invoke(app, ["run", str(sweep_dir / "sweep.yaml")])
        data_check = runner.invoke(app, ["data", "check", str(root)])
        for result in (checked, data_check):
            assert result.exit_code in (0, 2), (result.output, result.exception)
            assert not isinstance(result.exception, Exception | RecursionError), result.exception
        assert "Traceback" not in checked.output + ran.output + data_check.output
        if checked.exit_code == 0:
            event("valid: run reached the store")
            assert isinstance(ran.exception, _ReachedTheStore), (ran.output, ran.exception)
        else:
            event(_classify(checked.output))
            assert ran.exit_code == 2, (ran.output, ran.exception)
            assert ran.output == checked.output
            assert sorted(p.name for p in sweep_dir.iterdir()) == ["sweep.yaml"]
            # what refuses a sweep, `sweep data check` finds too (it checks more: paradigms)
            assert data_check.exit_code == 2, (checked.output, data_check.output)
    finally:
        shutil.rmtree(work, ignore_errors=True)


CACHE_TARGETS = ["npy", "sidecar", "tokenizer"]


@pytest.fixture(scope="module")
def small_cache(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    """A small corpus (each file's first 60 kB) with its tokenizer and token cache built."""
    root = tmp_path_factory.mktemp("data-fuzz-cache")
    for split in ("train", "dev", "test"):
        (root / "corpus" / split).mkdir(parents=True)
        for source in sorted((data_root / "babylm-mini" / split).iterdir()):
            text = source.read_bytes()[:60_000].decode("utf-8", errors="ignore")
            (root / "corpus" / split / source.name).write_text(text, encoding="utf-8")
    data = DataConfig(root=root, corpus=root / "corpus", vocab_size=300, cache_dir=root / "cache")
    prepare_corpus(data, splits=("train", "dev"))
    return data


@settings(
    max_examples=CACHE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(target=st.sampled_from(CACHE_TARGETS), damage=DAMAGE)
def test_a_damaged_cache_entry_is_rebuilt_in_one_line(
    small_cache: DataConfig, target: str, damage: tuple[Any, ...]
) -> None:
    work = Path(tempfile.mkdtemp(prefix="cache-fuzz-"))
    try:
        shutil.copytree(Path(str(small_cache.cache_dir)), work / "cache")
        data = small_cache.model_copy(update={"cache_dir": work / "cache"})
        before = prepare_corpus(data, splits=("train", "dev"))
        expected = np.load(before.token_files["dev"]).tolist()
        path = {
            "npy": before.token_files["dev"],
            "sidecar": before.token_files["dev"].with_suffix(".json"),
            "tokenizer": before.tokenizer_dir / "tokenizer.json",
        }[target]
        _damage(path, damage)
        after = prepare_corpus(data, splits=("train", "dev"))
        assert len(after.repaired) <= 1, after.repaired
        assert all("\n" not in line and line.endswith("rebuilt it") for line in after.repaired)
        event("rebuilt with one line" if after.repaired else "unchanged: still a valid entry")
        assert np.load(after.token_files["dev"]).tolist() == expected
        assert prepare_corpus(data, splits=("train", "dev")).repaired == ()
    finally:
        shutil.rmtree(work, ignore_errors=True)
