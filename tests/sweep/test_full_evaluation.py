"""A trial's full BabyLM evaluation, end to end: a real tiny checkpoint fine-tuned on every
(Super)GLUE task (the real MRPC/RTE plus small official-format files) and scored on the
zero-shot suites, its rows written to a real SQLite store, and the report rendering them.

A few steps per task (16 training examples, one epoch), so the whole run takes seconds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analysis.report import write_report
from sweep.config import GlueEvaluation, ZeroShotEvaluation
from sweep.runner import _evaluation_rows
from sweep.store import Store, TrialStatus, read_evaluations, read_trials
from sweep.trainable import TrialContext, _evaluate
from tests.trainers import task_files
from trainers.config import DataConfig, RecipeConfig
from trainers.evaluate import FINETUNE_TASKS, ZERO_SHOT_SUITES

pytestmark = pytest.mark.slow  # trains a tiny model and fine-tunes it eleven times


@pytest.fixture(scope="module")
def evaluated(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """What a repeats trial's final result carries after the full evaluation."""
    tmp = tmp_path_factory.mktemp("full_eval")
    checkpoint = task_files.train_tiny_checkpoint(data_root, tmp / "ckpt")
    root = tmp / "data"
    root.mkdir()
    (root / "blimp").symlink_to(data_root / "blimp", target_is_directory=True)
    task_files.link_real_glue(data_root, root / "glue")
    task_files.write_glue_tasks(root / "glue")
    task_files.write_zero_shot(root)
    recipe = RecipeConfig.model_validate(
        json.loads((checkpoint / "recipe_config.json").read_text())
    )
    data = DataConfig(root=root, corpus=recipe.data.corpus, blimp_pairs_per_paradigm=2).resolved()
    context = TrialContext(
        recipe=recipe.model_copy(update={"data": data}),
        epochs=1,
        glue=GlueEvaluation(
            tasks=list(FINETUNE_TASKS),
            epochs=1,
            batch_size=8,
            max_train_examples=16,
            max_eval_examples=16,
        ),
        zero_shot=ZeroShotEvaluation(suites=list(ZERO_SHOT_SUITES)),
    )
    return _evaluate(checkpoint, context.recipe, context)


def test_every_task_writes_one_row_per_official_metric_and_the_report_shows_them(
    evaluated: dict, tmp_path: Path
):
    glue = evaluated["evaluation"]["glue"]
    assert list(glue) == list(FINETUNE_TASKS)
    for task, spec in FINETUNE_TASKS.items():
        scores = [k for k in glue[task] if k not in ("group", "n")]
        majority = ["majority_class", *(f"majority_{m}" for m in spec.metrics)]
        # each official metric, then the majority-class baseline on the same examples
        assert [k for k in scores if not k.startswith("majority_")] == list(spec.metrics)
        assert [k for k in scores if k.startswith("majority_")] == majority, task
    assert glue["mrpc"]["n"] == 16 and glue["multirc"]["n"] == 7  # 7 answer options
    primary = [glue[t][FINETUNE_TASKS[t].primary] for t in FINETUNE_TASKS]
    assert evaluated["glue_average"] == pytest.approx(sum(primary) / len(primary))
    suites = [evaluated["evaluation"][s]["overall"]["accuracy"] for s in ZERO_SHOT_SUITES]
    assert evaluated["zeroshot_average"] == pytest.approx(sum(suites) / 3)

    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    with Store(url) as store:
        sweep_id = store.upsert_sweep(
            "full", config={"name": "full"}, config_hash="h", code_version="test"
        )
        stage = store.upsert_stage(sweep_id, "repeats", kind="repeats")
        for number, role in enumerate(("teacher", "student")):
            trial = store.upsert_trial(stage, number, role=role, params={}, seed=number)
            numbers = {
                k: v for k, v in evaluated.items() if isinstance(v, float) and k != "evaluation"
            }
            store.add_metrics(trial, 1, {"dev_loss": 5.0, "test_loss": 5.1, **numbers})
            store.add_evaluations(trial, _evaluation_rows(evaluated["evaluation"]))
            store.finish_trial(trial, TrialStatus.COMPLETE, objective=5.0)

    rows = read_evaluations(url, "full")
    teacher = rows[(rows["suite"] == "glue") & (rows["number"] == 0)]
    assert {task: set(group["metric"]) for task, group in teacher.groupby("task")} == {
        task: {*spec.metrics, "majority_class", *(f"majority_{m}" for m in spec.metrics)}
        for task, spec in FINETUNE_TASKS.items()
    }
    trials = read_trials(url, "full")
    for column in ("glue_cola_mcc", "glue_mnli_mm_accuracy", "glue_multirc_em", "glue_average"):
        assert trials[column].notna().all(), column
    for column in ("blimp_filtered_accuracy", "ewok_accuracy", "zeroshot_average"):
        assert trials[column].notna().all(), column

    page = write_report(url, tmp_path / "report.html", sweep="full").read_text(encoding="utf-8")
    for label in ("cola · mcc", "mnli_mm · accuracy", "multirc · f1a", "multirc · em",
                  "wsc · accuracy", "GLUE average", "EWoK · accuracy", "zero-shot average"):  # fmt: skip
        assert label in page, label
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.S).group(1))
    shown = {(r["group"], r["column"]) for r in data["glue"]}
    assert ("repeats:student", "glue_cola_mcc") in shown
    assert ("repeats:teacher", "glue_average") in shown
    assert {r["column"] for r in data["zero_shot"]} == {
        "blimp_filtered_accuracy", "blimp_supplement_accuracy", "ewok_accuracy",
        "zeroshot_average",
    }  # fmt: skip
    assert {"glue_average", "zeroshot_average"} <= set(data["reported_metrics"])
