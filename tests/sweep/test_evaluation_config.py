"""evaluation.glue and evaluation.zero_shot in sweep.yaml: task names, recipes, data checks."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from test_config import write_variant
from typer.testing import CliRunner

from sweep.cli import app
from sweep.config import GlueEvaluation, GlueTask, ZeroShotSuite, load_sweep_config
from sweep.errors import ConfigError
from tests.trainers import task_files
from trainers.evaluate import FINETUNE_TASKS, ZERO_SHOT_SUITES


def test_config_names_every_task_and_suite_the_trainers_run():
    assert list(typing.get_args(GlueTask)) == list(FINETUNE_TASKS)
    assert list(typing.get_args(ZeroShotSuite)) == list(ZERO_SHOT_SUITES)


def test_default_recipe_is_babylm_2024s_for_every_task():
    glue = GlueEvaluation(tasks=["cola", "mnli", "mnli-mm", "wsc"])
    babylm = {"epochs": 10, "lr": 5e-5, "batch_size": 64, "max_seq_length": 128, "patience": 3}
    assert glue.recipes() == {"cola": babylm, "mnli": babylm, "wsc": babylm}


def test_recipe_layers_preset_then_global_then_per_task():
    glue = GlueEvaluation(
        tasks=["cola", "boolq", "rte"],
        recipe="babylm2023",
        epochs=2,
        per_task={"boolq": {"lr": 1e-3, "max_seq_length": 64}},
        early_stopping=False,
    )
    recipes = glue.recipes()
    assert recipes["cola"] == {
        "epochs": 2, "lr": 4e-5, "batch_size": 64, "max_seq_length": 128, "patience": None,
    }  # fmt: skip
    assert recipes["boolq"] == {
        "epochs": 2, "lr": 1e-3, "batch_size": 16, "max_seq_length": 64, "patience": None,
    }  # fmt: skip
    assert recipes["rte"]["lr"] == 5e-5


def test_todays_file_still_loads_and_overrides_every_task(tmp_path: Path):
    config = load_sweep_config(write_variant(tmp_path, {}))
    glue = config.evaluation.glue
    assert glue.tasks == ["mrpc", "rte"]
    assert {r["epochs"] for r in glue.recipes().values()} == {glue.epochs}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"evaluation.glue.tasks": ["mrpc", "wnli"]}, "evaluation.glue.tasks"),
        ({"evaluation.glue.per_task": {"mnli-mm": {"lr": 1e-4}}}, "evaluation.glue.per_task"),
        ({"evaluation.glue.recipe": "babylm2025"}, "evaluation.glue.recipe"),
        ({"evaluation.zero_shot.suites": ["blimp_full"]}, "evaluation.zero_shot.suites"),
    ],
)
def test_bad_evaluation_field_is_named(tmp_path: Path, changes: dict, field: str):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_sweep_config(write_variant(tmp_path, changes))


def test_missing_task_files_and_suites_are_named_before_a_run(tmp_path: Path, data_root: Path):
    root = tmp_path / "data"
    root.mkdir()
    for name in ("babylm-mini", "blimp"):
        (root / name).symlink_to(data_root / name, target_is_directory=True)
    task_files.link_real_glue(data_root, root / "glue")
    task_files.write_glue_tasks(root / "glue")
    (root / "glue" / "MNLI" / "dev_mismatched.tsv").unlink()
    task_files.write_zero_shot(root)
    path = write_variant(
        tmp_path,
        {
            "data.root": str(root),
            "evaluation.glue.tasks": ["cola", "mnli-mm", "boolq"],
            "evaluation.zero_shot.suites": ["ewok", "blimp_supplement"],
        },
    )
    with pytest.raises(ConfigError) as err:
        load_sweep_config(path)
    message = str(err.value)
    assert str(root / "glue" / "MNLI" / "dev_mismatched.tsv") in message
    assert "cola" not in message and "supplement" not in message
    task_files.write_tsv(root / "glue" / "MNLI" / "dev_mismatched.tsv", ["gold_label"], [])
    (root / "supplement_filtered" / "turn_taking.jsonl").unlink()
    (root / "supplement_filtered" / "qa_congruence_easy.jsonl").unlink()
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "evaluation.zero_shot.suites" in result.output
    assert str(root / "supplement_filtered") in result.output.replace("\n", "")


def test_a_wrong_layout_stops_the_run_before_the_store_is_touched(tmp_path: Path, data_root: Path):
    root = tmp_path / "data"
    root.mkdir()
    for name in ("babylm-mini", "blimp"):
        (root / name).symlink_to(data_root / name, target_is_directory=True)
    task_files.link_real_glue(data_root, root / "glue")
    task_files.write_glue_tasks(root / "glue")
    bad = root / "glue" / "SST-2" / "dev.tsv"
    bad.write_text("text\tlabel\nnice\t1\n")
    db = tmp_path / "store.db"
    path = write_variant(
        tmp_path,
        {"data.root": str(root), "storage": f"sqlite:///{db}", "evaluation.glue.tasks": ["sst2"]},
    )
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert str(bad) in result.output.replace("\n", "")  # rich may wrap the long path
    assert "'sentence'" in out and "Traceback" not in result.output
    assert not db.exists()
