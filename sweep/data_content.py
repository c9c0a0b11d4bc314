"""What is inside the data files: the checks `sweep data check`, `sweep validate` and
`sweep run` share, so a file the trainers would crash on (after trials have trained) is
refused before anything is written.

- a corpus file must be UTF-8 text (the tokenizer's Rust reader and the dev/test reader
  both stop at the first bad byte), and each split must hold some non-blank line;
- a BLiMP file must be UTF-8 JSON lines, each an object with string `sentence_good` and
  `sentence_bad`, at least one pair;
- a GLUE file must read as `trainers.evaluate.glue.read_glue_task` reads it.

Each file is read once per process for a given (size, mtime, inode): the fuzz tests and a
`validate` followed by a `run` in one process do not read the corpus twice.

Example::

    for line in corpus_content_problems(Path("data/babylm-mini")):
        print(line)  # data/babylm-mini/train/x.train: byte 1,204 is not UTF-8 text; ...
"""

from __future__ import annotations

import codecs
import functools
import json
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "blimp_file_problem",
    "blimp_pairs",
    "corpus_content_problems",
    "glue_content_problems",
    "text_file_problem",
]

_BLOCK = 1 << 20


def _stamp(path: Path) -> tuple[str, int, int, int]:
    stat = path.stat()
    return str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino


def text_file_problem(path: Path) -> tuple[str | None, bool]:
    """(why the file is not UTF-8 text or None, whether it has a non-blank line)."""
    try:
        return _text_file_problem(*_stamp(Path(path)))
    except OSError as exc:
        return f"{path}: cannot read it ({exc.strerror or exc})", False


@functools.lru_cache(maxsize=4096)
def _text_file_problem(path: str, size: int, mtime_ns: int, ino: int) -> tuple[str | None, bool]:
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, has_text = 0, False
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_BLOCK)
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the last block
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                at = offset - pending + exc.start
                return (
                    f"{path}: byte {max(at, 0):,} is not UTF-8 text; save the file as UTF-8",
                    has_text,
                )
            has_text = has_text or bool(text.strip())
            if not block:
                return None, has_text
            offset += len(block)


def corpus_content_problems(
    corpus: Path, splits: Iterable[str] = ("train", "dev", "test"), *, blank: bool = True
) -> list[str]:
    """Files that are not UTF-8, and (`blank`) splits whose files hold only whitespace
    (empty files are the layout checks' to report)."""
    problems = []
    for split in splits:
        folder = Path(corpus) / split
        if not folder.is_dir():
            continue  # the layout checks say so
        files = sorted(p for p in folder.glob(f"*.{split}") if p.is_file())
        all_blank = True
        for path in files:
            problem, has_text = text_file_problem(path)
            if problem:
                problems.append(problem)
            all_blank = all_blank and not has_text
        if blank and all_blank and any(p.stat().st_size for p in files):
            problems.append(
                f"{folder}: every *.{split} file holds only whitespace; the {split} split needs text"
            )
    return problems


def blimp_pairs(path: Path) -> tuple[int, str | None]:
    """(minimal pairs in the file, the first problem or None)."""
    try:
        return _blimp_pairs(*_stamp(Path(path)))
    except OSError as exc:
        return 0, f"{path}: cannot read it ({exc.strerror or exc})"


def blimp_file_problem(path: Path) -> str | None:
    return blimp_pairs(path)[1]


@functools.lru_cache(maxsize=4096)
def _blimp_pairs(path: str, size: int, mtime_ns: int, ino: int) -> tuple[int, str | None]:
    problem, _ = _text_file_problem(path, size, mtime_ns, ino)
    if problem:
        return 0, problem
    n = 0
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                good, bad = row["sentence_good"], row["sentence_bad"]
                if not isinstance(good, str) or not isinstance(bad, str):
                    raise TypeError("sentence_good and sentence_bad must be strings")
            except (json.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
                shown = " ".join(str(exc).split())[:120]
                return n, (
                    f"{path}, line {number}: not a BLiMP pair (needs sentence_good, "
                    f"sentence_bad): {shown}"
                )
            n += 1
    return n, None if n else f"{path}: no minimal pairs"


def glue_content_problems(glue_dir: Path, tasks: Iterable[str]) -> list[str]:
    """What trainers.evaluate.tasks.read_task refuses in each task's files (its own layout)."""
    from trainers.evaluate.tasks import task_files

    problems = []
    for task in dict.fromkeys(tasks):
        for split, path in task_files(Path(glue_dir), task).paths.items():
            try:
                problem = _glue_problem(str(glue_dir), task, split, *_stamp(path)[1:])
            except OSError:
                continue  # a missing file: the layout checks say so
            if problem:
                problems.append(problem)
    return problems


@functools.lru_cache(maxsize=256)
def _glue_problem(
    glue_dir: str, task: str, split: str, size: int, mtime_ns: int, ino: int
) -> str | None:
    from trainers.errors import TrainerError
    from trainers.evaluate.tasks import read_task, task_files

    try:
        examples = read_task(Path(glue_dir), task, split)
    except TrainerError as exc:
        return str(exc).removeprefix("data.glue: ")
    if not examples:
        return f"{task_files(Path(glue_dir), task).paths[split]}: no rows"
    return None
