"""`sweep data check` and sweep.yaml's data checks on BabyLM's filtered (Super)GLUE files.

The real MRPC and RTE (linked) stay in their official layout; every other task is a small
file in BabyLM's `glue_filtered/` layout written by tests/trainers/filtered_files.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_config import write_variant
from test_data_cli import flat, run

from sweep.config import load_sweep_config
from sweep.errors import ConfigError
from tests.trainers import filtered_files, task_files


def _root(tmp_path: Path, data_root: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    for name in ("babylm-mini", "blimp"):
        (root / name).symlink_to(data_root / name, target_is_directory=True)
    task_files.link_real_glue(data_root, root / "glue")
    filtered_files.write_filtered_tasks(root / "glue" / "glue_filtered")
    return root


def test_check_reads_every_filtered_task(tmp_path: Path, data_root: Path):
    done = run("data", "check", str(_root(tmp_path, data_root)))
    assert done.exit_code == 0, done.output
    out = flat(done.output)
    assert "glue mrpc: train 3,667, dev 408 rows (TSV)" in out  # the official folder wins
    assert "glue cola: train 6, dev 6 rows (BabyLM filtered JSONL)" in out
    assert "glue mnli: train 6, dev 4 rows (BabyLM filtered JSONL)" in out
    assert "glue multirc: train 7, dev 7 rows (BabyLM filtered JSONL)" in out
    assert "glue: not set up" not in out


def test_check_names_a_wrong_field_and_exits_2(tmp_path: Path, data_root: Path):
    root = _root(tmp_path, data_root)
    bad = root / "glue" / "glue_filtered" / "wsc.valid.jsonl"
    task_files.write_jsonl(bad, [{"text": "t", "span1": "a", "span2_text": "b", "label": 1}])
    done = run("data", "check", str(root))
    assert done.exit_code == 2
    assert "Traceback" not in done.output
    problems = [line for line in done.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1, done.output
    assert str(bad) in done.output.replace("\n", "")  # rich may wrap the long path
    assert "'span1_text'" in flat(done.output)


def test_sweep_yaml_accepts_filtered_tasks_and_names_a_missing_split(
    tmp_path: Path, data_root: Path
):
    root = _root(tmp_path, data_root)
    tasks = ["cola", "mnli-mm", "boolq", "multirc", "wsc"]
    path = write_variant(tmp_path, {"data.root": str(root), "evaluation.glue.tasks": tasks})
    assert load_sweep_config(path).evaluation.glue.tasks == tasks
    missing = root / "glue" / "glue_filtered" / "mnli-mm.valid.jsonl"
    missing.unlink()
    with pytest.raises(ConfigError) as err:
        load_sweep_config(path)
    assert str(missing) in str(err.value) and "mnli-mm" in str(err.value)
