"""BabyLM's vocabulary-filtered (Super)GLUE files (trainers.evaluate.tasks.task_files).

The filtered files hold the same examples as the official-layout fixtures
(tests/trainers/filtered_files.py), so every task must read, fine-tune and score exactly
as its official layout does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trainers import filtered_files, task_files
from trainers.errors import TrainerError
from trainers.evaluate.tasks import FINETUNE_TASKS, read_task
from trainers.evaluate.tasks import task_files as files_of

REPO = Path(__file__).resolve().parents[2]
FIXTURE_TASKS = [t for t in FINETUNE_TASKS if t not in ("mrpc", "rte")]


@pytest.fixture
def official(glue: Path) -> Path:
    """The official-layout fixtures (tests/trainers/conftest.py), named beside `filtered`."""
    return glue


@pytest.fixture(scope="module")
def filtered(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.glue as a user keeps it: the real MRPC/ and RTE/ beside BabyLM's glue_filtered/."""
    glue = tmp_path_factory.mktemp("filtered") / "glue"
    task_files.link_real_glue(data_root, glue)
    filtered_files.write_filtered_tasks(glue / "glue_filtered")
    return glue


def _rows(glue: Path, task: str, split: str) -> list[tuple]:
    return [(e.text_a, e.text_b, e.label) for e in read_task(glue, task, split)]


def _groups(glue: Path, task: str) -> list[int]:
    """Each example's question as the index of its first example (keys differ by layout)."""
    first: dict[str | None, int] = {}
    return [first.setdefault(e.question, i) for i, e in enumerate(read_task(glue, task, "dev"))]


@pytest.mark.parametrize("task", FIXTURE_TASKS)
def test_filtered_files_read_as_the_official_layout(official: Path, filtered: Path, task: str):
    assert files_of(filtered, task).layout == "BabyLM filtered JSONL"
    for split in ("train", "dev"):
        assert _rows(filtered, task, split) == _rows(official, task, split)
    if task == "multirc":  # EM groups the same answers by the same questions
        assert _groups(filtered, task) == _groups(official, task) == [0, 0, 0, 3, 3, 5, 5]


def test_mnli_matched_and_mismatched_and_the_2023_names(official: Path, tmp_path: Path):
    folder = tmp_path / "filter-data" / "glue_filtered"  # data.glue pointing at the folder
    filtered_files.write_filtered_tasks(folder, pipeline=2023)
    assert files_of(folder, "mnli-mm").paths == {
        "train": folder / "mnli.train.json",
        "dev": folder / "mnli.validation_mismatched.json",
    }
    assert [e.label for e in read_task(folder, "mnli", "dev")] == [0, 2, 1, 0]
    assert read_task(folder, "mnli-mm", "dev")[0].text_b == "The dog is brown."
    for task in FIXTURE_TASKS:
        assert _rows(folder, task, "dev") == _rows(official, task, "dev")
    # the 2024 names win over the 2023 ones in the same folder
    task_files.write_jsonl(folder / "cola.train.jsonl", [{"sentence": "Only.", "label": 1}])
    assert files_of(folder, "cola").paths["train"].name == "cola.train.jsonl"


def test_an_official_folder_wins_over_filtered_files(filtered: Path):
    assert files_of(filtered, "mrpc").layout == "TSV"
    assert len(read_task(filtered, "mrpc", "dev")) == 408  # the real file, not the stand-in
    assert files_of(filtered, "mrpc").paths["dev"] == filtered / "MRPC" / "dev.tsv"


def test_a_missing_filtered_split_names_the_file(tmp_path: Path):
    task_files.write_jsonl(tmp_path / "glue_filtered" / "boolq.train.jsonl", [])
    with pytest.raises(TrainerError) as err:
        read_task(tmp_path, "boolq", "dev")
    assert str(tmp_path / "glue_filtered" / "boolq.valid.jsonl") in str(err.value)


@pytest.mark.parametrize(
    ("task", "row", "names"),
    [
        ("cola", {"text": "A cat.", "label": 1}, ["field 'sentence'"]),
        ("sst2", {"sentence": "nice"}, ["field 'label'"]),
        ("mrpc", {"#1 String": "a", "#2 String": "b", "label": 1}, ["field 'sentence1'"]),
        ("qqp", {"question1": "a", "q2": "b", "label": 0}, ["field 'question2'"]),
        ("mnli", {"sentence1": "a", "sentence2": "b", "label": 0}, ["field 'premise'"]),
        ("mnli", {"premise": "a", "hypothesis": "b", "label": "neutral"},
         ["field 'label'", "'neutral'"]),
        ("qnli", {"question": "a", "sentence": "b", "label": 2}, ["field 'label'", "0-1"]),
        ("rte", {"premise": "a", "hypothesis": "b", "label": 0}, ["field 'sentence1'"]),
        ("boolq", {"question": "q", "text": "p", "label": True}, ["field 'passage'"]),
        ("multirc", {"passage": {"text": "p"}, "question": "q", "answer": "a", "label": 1},
         ["field 'paragraph'"]),
        ("wsc", {"text": "t", "target": {"span1_text": "a", "span2_text": "b"}, "label": 1},
         ["field 'span1_text'"]),
        ("cola", {"sentence": 3, "label": 1}, ["field 'sentence'", "not text"]),
    ],
)  # fmt: skip
def test_a_wrong_field_names_the_file_and_the_field(
    tmp_path: Path, task: str, row: dict, names: list[str]
):
    folder = tmp_path / "glue_filtered"
    trains_as = FINETUNE_TASKS[task].trains_as
    task_files.write_jsonl(folder / f"{trains_as}.train.jsonl", [row])
    with pytest.raises(TrainerError) as err:
        read_task(tmp_path, task, "train")
    message = str(err.value)
    assert f"{folder / f'{trains_as}.train.jsonl'}, line 1" in message
    for name in names:
        assert name in message


def test_cli_exits_2_on_a_wrong_field_and_writes_nothing(tmp_path: Path):
    folder = tmp_path / "root" / "glue" / "glue_filtered"
    for name in ("cola.train.jsonl", "cola.valid.jsonl"):
        task_files.write_jsonl(folder / name, [{"text": "A cat.", "label": 1}])
    out = tmp_path / "scores.json"
    done = subprocess.run(
        [sys.executable, "-m", "trainers.evaluate", "--checkpoint", str(tmp_path / "none"),
         "--data-root", str(tmp_path / "root"), "--glue", "cola", "--json", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert str(folder / "cola.train.jsonl") in done.stderr
    assert "field 'sentence'" in done.stderr
    assert not out.exists()


@pytest.mark.slow  # fine-tunes the tiny checkpoint on nine tasks, twice
def test_filtered_tasks_fine_tune_and_score_as_the_official_layout(
    tiny_checkpoint: Path, official: Path, filtered: Path
):
    from trainers.evaluate.glue import glue_scores

    kw = {"epochs": 2, "batch_size": 4, "lr": 1e-3, "seed": 3, "return_predictions": True}
    from_filtered = glue_scores(tiny_checkpoint, filtered, tasks=FIXTURE_TASKS, **kw)
    from_official = glue_scores(tiny_checkpoint, official, tasks=FIXTURE_TASKS, **kw)
    assert list(from_filtered) == FIXTURE_TASKS
    for task in FIXTURE_TASKS:
        assert set(FINETUNE_TASKS[task].metrics) <= set(from_filtered[task])
        assert from_filtered[task]["n"] == len(read_task(official, task, "dev"))
    assert json.dumps(from_filtered, sort_keys=True) == json.dumps(from_official, sort_keys=True)
