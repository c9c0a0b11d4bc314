"""BabyLM's GLUE and zero-shot averages in the verdict; per-task rows stay descriptive."""

from __future__ import annotations

import dataclasses

import numpy as np

from analysis.headline import reported_metrics, verdict_metrics
from analysis.load import load_frames
from analysis.sections.tasks import majority_column, task_label
from analysis.verdict import verdicts


def test_glue_average_is_one_more_test_per_comparison_and_per_task_scores_none(demo_store: str):
    frames = load_frames(demo_store, "demo")
    assert "glue_average" not in verdict_metrics(frames)  # a store without it is judged as before
    trials = frames.trials.copy()
    repeats = trials["stage"] == "repeats"
    rng = np.random.default_rng(0)
    lift = 0.05 * (trials["role"] == "student")
    trials["glue_average"] = np.where(
        repeats, 0.6 + lift + rng.normal(0, 0.005, len(trials)), np.nan
    )
    trials["glue_cola_mcc"] = np.where(repeats, 0.1, np.nan)  # a per-task column: descriptive
    frames = dataclasses.replace(frames, trials=trials)

    assert list(verdict_metrics(frames)) == [*reported_metrics(frames), "glue_average"]
    found = verdicts(frames)
    family = {v.metric for cv in found for v in cv.metrics}
    assert "glue_average" in family and "glue_cola_mcc" not in family
    teachers = next(cv for cv in found if "vs teachers" in cv.line)
    glue = next(v for v in teachers.metrics if v.metric == "glue_average")
    assert glue.difference is not None and glue.difference > 0.04
    assert "GLUE average" in teachers.line and "pp" in teachers.line
    # BLiMP, test loss and the GLUE average: the family grows by one test, not one per task.
    assert [v.metric for v in teachers.metrics] == ["blimp_overall", "test_loss", "glue_average"]


def test_task_labels():
    assert task_label("glue_mnli_mm_accuracy") == "mnli_mm · accuracy"
    assert task_label("glue_multirc_f1a") == "multirc · f1a"
    assert task_label("glue_mrpc_f1") == "mrpc · f1"
    assert task_label("glue_average") == "GLUE average"
    assert task_label("ewok_accuracy") == "EWoK · accuracy"


def test_majority_columns():
    assert majority_column("glue_mrpc_f1") == "glue_mrpc_majority_f1"
    assert majority_column("glue_multirc_f1a") == "glue_multirc_majority_f1a"
    assert majority_column("glue_mnli_mm_accuracy") == "glue_mnli_mm_majority_accuracy"
    for none in ("glue_average", "glue_mrpc_majority_f1", "ewok_accuracy", "blimp_overall"):
        assert majority_column(none) is None
