"""`sweep data check` and `sweep data prepare` through the real CLI, on real data slices."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweep.cli import app
from sweep.datasets import BLIMP_PARADIGMS
from trainers.config import DataConfig
from trainers.data import corpus_files

SOURCES = ("childes", "simple_wiki")


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def flat(text: str) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(text.split())


def _lines(text: str, n: int) -> str:
    return "".join(text.splitlines(keepends=True)[:n])


@pytest.fixture
def release(data_root: Path, tmp_path: Path) -> Path:
    """A small folder shaped like the BabyLM 2024 release: text_data/train_10M, train_100M,
    dev, test of <source>.<split> files (real babylm-mini lines)."""
    text = {
        split: (data_root / "babylm-mini" / split / f"childes.{split}").read_text()
        for split in ("train", "dev", "test")
    }
    root = tmp_path / "babylm_release" / "text_data"
    for folder, split, lines in [
        ("train_10M", "train", 200),
        ("train_100M", "train", 400),
        ("dev", "dev", 50),
        ("test", "test", 60),
    ]:
        (root / folder).mkdir(parents=True)
        for i, source in enumerate(SOURCES):
            (root / folder / f"{source}.{split}").write_text(_lines(text[split], lines + i))
    return tmp_path / "babylm_release"


def _data_root(tmp_path: Path, data_root: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "blimp").symlink_to(data_root / "blimp")
    (root / "glue").symlink_to(data_root / "glue")
    return root


def test_prepare_lays_out_a_release_that_check_and_the_trainers_accept(
    release: Path, data_root: Path, tmp_path: Path
) -> None:
    root = _data_root(tmp_path, data_root)
    done = run("data", "prepare", str(release), str(root / "babylm-10m"), "--size", "10M")
    assert done.exit_code == 0, done.output
    corpus = root / "babylm-10m"
    for split, folder in [("train", "train_10M"), ("dev", "dev"), ("test", "test")]:
        copied = sorted(p.name for p in (corpus / split).iterdir())
        assert copied == [f"{s}.{split}" for s in SOURCES]
        words = sum(len(p.read_text().split()) for p in (release / "text_data" / folder).iterdir())
        assert f"{split} {words:,} words" in done.output
    # the trainers read it as a corpus
    data = DataConfig(root=root, corpus=Path("babylm-10m")).resolved()
    assert [p.name for p in corpus_files(data, "dev")] == ["childes.dev", "simple_wiki.dev"]

    check = run("data", "check", str(root))
    assert check.exit_code == 0, check.output
    assert "corpus babylm-10m: train " in check.output
    assert "blimp: 67/67 paradigms, 67,000 minimal pairs" in check.output
    assert "glue rte: train 1,244, dev 139 rows" in check.output

    big = run(
        "data", "prepare", str(release / "text_data"), str(root / "babylm-100m"), "--size", "100M"
    )
    assert big.exit_code == 0, big.output
    assert (root / "babylm-100m" / "train" / "childes.train").read_text() == (
        release / "text_data" / "train_100M" / "childes.train"
    ).read_text()


def test_prepare_refuses_without_a_trace(release: Path, tmp_path: Path) -> None:
    target = tmp_path / "out"
    done = run("data", "prepare", str(release), str(target), "--size", "1B")
    assert done.exit_code == 2
    assert "no train folder of the BabyLM release" in flat(done.output)
    assert "--size" in flat(done.output)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["babylm_release"]  # no staging left
    target.mkdir()
    (target / "x").write_text("x")
    done = run("data", "prepare", str(release), str(target))
    assert done.exit_code == 2
    assert "exists and is not empty" in flat(done.output)


def test_check_names_each_problem_on_one_line(
    release: Path, data_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    corpus = root / "mycorpus"
    shutil.copytree(release / "text_data" / "train_10M", corpus / "train")
    shutil.copytree(release / "text_data" / "dev", corpus / "dev")
    (corpus / "dev" / "childes.dev").write_text("")  # one empty source
    (root / "blimp").mkdir()
    for name in BLIMP_PARADIGMS[:-1]:  # 66 of 67
        (root / "blimp" / f"{name}.jsonl").symlink_to(data_root / "blimp" / f"{name}.jsonl")
    shutil.copytree(data_root / "glue", root / "glue")
    rte = root / "glue" / "RTE" / "dev.tsv"
    rte.write_text(rte.read_text().rstrip("\n") + "\n99\tcut off row\n")

    done = run("data", "check", str(root))
    assert done.exit_code == 2, done.output
    problems = [line for line in done.output.splitlines() if line.startswith("problem:")]
    assert "Traceback" not in done.output
    assert len(problems) == 4, done.output
    assert any(str(corpus / "dev" / "childes.dev") in p and "empty" in p for p in problems)
    assert any(str(corpus / "test") in p and "missing" in p for p in problems)
    assert any(
        f"1 of the 67 BLiMP paradigms missing ({BLIMP_PARADIGMS[-1]})" in p for p in problems
    )
    assert any(str(rte) in p and "line 141" in p for p in problems)
    assert "blimp: 66/67 paradigms, 66,000 minimal pairs" in done.output


def test_prepare_clean_applies_the_reference_cleaners_once(tmp_path: Path) -> None:
    """--clean: BabyLlama-2's per-source cleaning (its mrclean step), and the corpus is marked
    so the babyllama2 pipeline reads it as it is; a corpus in the trainers' layout works too."""
    from trainers.data import prepare_corpus

    source = tmp_path / "mycorpus"  # train/, dev/, test/: the trainers' own layout
    raw = {
        "childes": "you  want it ?\nyes .\n",
        "simple_wiki": "Title\n\nText  one .\n",
        "fairy_tales": "The  end .\n\n",
    }
    for split in ("train", "dev", "test"):
        (source / split).mkdir(parents=True)
        for name, text in raw.items():
            (source / split / f"{name}.{split}").write_text(text * 20)
    target = tmp_path / "clean"
    done = run("data", "prepare", str(source), str(target), "--clean")
    assert done.exit_code == 0, done.output
    assert "fairy_tales: no reference cleaner, left as is" in flat(done.output)
    for split in ("train", "dev", "test"):
        folder = target / split
        assert (folder / f"childes.{split}").read_text() == "you want it?\nyes.\n" * 20
        # "\n\n" removed: the reference replaces it by its empty padding and start strings
        assert (folder / f"simple_wiki.{split}").read_text() == "TitleText  one .\n" * 20
        assert (folder / f"fairy_tales.{split}").read_text() == "The  end .\n\n" * 20
    data = DataConfig(
        root=tmp_path,
        corpus=target,
        pipeline="babyllama2",
        vocab_size=300,
        cache_dir=tmp_path / "c",
    )
    built = prepare_corpus(data).built
    assert built and not [step for step in built if step.startswith("cleaned")]
    plain = run("data", "prepare", str(source), str(tmp_path / "plain"))
    assert plain.exit_code == 0, plain.output
    assert (tmp_path / "plain" / "train" / "childes.train").read_text() == raw["childes"] * 20
    assert not (tmp_path / "plain" / "cleaning.json").exists()
