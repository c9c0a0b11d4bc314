"""A trial's cost (revision 0007): stored when it finishes, computed on read for older rows,
summed per stage by `sweep status`."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from store_scenarios import DemoIds

from sweep.store import Store, TrialStatus, read_trials, render_status, trial_cost
from sweep.store.cost import llama_parameters

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
MODEL = {"preset": None, "hidden_size": 32, "intermediate_size": 80, "num_layers": 2}
MODEL |= {"num_heads": 4, "num_kv_heads": 2, "max_position_embeddings": 64}
RECIPE = {"model": {**MODEL, "tie_embeddings": False}, "data": {"vocab_size": 300}}


def _trial(store: Store, stage: int, number: int, resources: dict, **kw: str) -> int:
    return store.upsert_trial(
        stage,
        number,
        role=kw.pop("role", "teacher"),
        params={},
        seed=number,
        resources=resources,
        config=RECIPE,
        started_at=T0,
        **kw,
    )


def test_device_seconds_are_wall_time_times_the_devices_held(store: Store) -> None:
    sweep = store.upsert_sweep("cost", config={}, config_hash="h", code_version="t")
    stage = store.upsert_stage(sweep, "teachers")
    held = [({"cpu": 2, "gpu": 0}, 2.0), ({"cpu": 8, "gpu": 0.5}, 0.5), ({"cpu": 4, "gpu": 2}, 2.0)]
    for number, (resources, _) in enumerate(held):
        trial = _trial(store, stage, number, resources)
        ended = T0 + timedelta(minutes=30 + number)
        # the first is finished as the recorder does; the others as a row before 0007
        cost = trial_cost(started_at=T0, ended_at=ended, resources=resources, metrics={})
        store.finish_trial(
            trial,
            TrialStatus.COMPLETE,
            objective=1.0,
            ended_at=ended,
            cost=cost if number == 0 else None,
        )
    trials = read_trials(store, "cost").set_index("number")
    for number, (_, devices) in enumerate(held):
        assert trials.loc[number, "device_seconds"] == pytest.approx((30 + number) * 60 * devices)
    assert math.isnan(trials.loc[0, "train_flops"])  # it reported no tokens


def test_older_rows_get_their_cost_on_read_from_their_metrics_and_config(store: Store) -> None:
    sweep = store.upsert_sweep("old", config={}, config_hash="h", code_version="t")
    teachers = store.upsert_stage(sweep, "teachers")
    students = store.upsert_stage(sweep, "students")
    cpu = {"cpu": 1, "gpu": 0}
    teacher_ids = [_trial(store, teachers, i, cpu) for i in range(2)]
    for teacher in teacher_ids:  # written before trials reported their parameter count
        store.add_metrics(teacher, 1, {"tokens_seen": 1000.0})
        store.finish_trial(teacher, TrialStatus.COMPLETE, objective=2.0, ended_at=T0)
    student = _trial(store, students, 0, cpu, role="student")
    store.set_trial_teachers(student, teacher_ids)
    store.add_metrics(student, 1, {"tokens_seen": 500.0, "eval_tokens": 40.0})
    store.add_metrics(student, 2, {"tokens_seen": 1000.0, "eval_tokens": 90.0})
    store.finish_trial(student, TrialStatus.COMPLETE, objective=1.5, ended_at=T0)

    n = llama_parameters(RECIPE)
    trials = read_trials(store, "old").set_index("trial_id")
    assert trials.loc[student, "tokens_trained"] == 1000
    assert trials.loc[student, "train_flops"] == pytest.approx(
        6 * n * 1000 + 2 * (2 * n) * 1000 + 2 * n * 90
    )
    assert trials.loc[teacher_ids[0], "train_flops"] == pytest.approx(6 * n * 1000)


def test_the_parameter_count_of_an_old_row_is_the_models_own() -> None:
    from trainers.config import ModelConfig
    from trainers.model import build_model, count_parameters

    for tie in (False, True):
        recipe = {"model": {**MODEL, "tie_embeddings": tie}, "data": {"vocab_size": 300}}
        model = build_model(
            ModelConfig.model_validate(recipe["model"]),
            vocab_size=300,
            bos_id=0,
            eos_id=1,
            pad_id=2,
            seq_length=32,
        )
        assert llama_parameters(recipe) == count_parameters(model)


def test_status_shows_each_stages_device_hours(store: Store, demo: DemoIds) -> None:
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(render_status(store, "demo"))
    text = console.export_text()
    assert "device-h" in text
    (teachers,) = [ln for ln in text.splitlines() if ln.strip().startswith("teachers")]
    # four teachers of 10 minutes each on one CPU core
    assert teachers.replace("│", " ").split()[-1] == "0.667"


def test_a_row_without_a_valid_model_has_no_flops_on_read(store: Store) -> None:
    sweep = store.upsert_sweep("odd", config={}, config_hash="h", code_version="t")
    stage = store.upsert_stage(sweep, "teachers")
    trial = store.upsert_trial(
        stage, 0, role="teacher", params={}, seed=0, config={"model": {"preset": "huge"}}
    )
    store.add_metrics(trial, 1, {"tokens_seen": 10.0})
    store.finish_trial(trial, TrialStatus.COMPLETE, objective=1.0)
    row = read_trials(store, "odd").iloc[0]
    assert row["tokens_trained"] == 10 and math.isnan(row["train_flops"])
    assert math.isnan(row["device_seconds"])  # no start time, no resources
