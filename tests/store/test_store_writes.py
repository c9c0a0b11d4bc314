"""Writes: upserts on natural keys, so replaying a sweep's results adds nothing twice."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa
from store_scenarios import DemoIds, write_demo_sweep

from sweep.store import (
    EvaluationRow,
    Store,
    StoreError,
    TrialStatus,
    checkpoint_fingerprint,
    read_evaluations,
    read_metrics,
    read_trials,
)
from sweep.store.models import Evaluation, Trial, TrialMetric


def _count(store: Store, model: type) -> int:
    with store.session(readonly=True) as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_replaying_a_sweep_adds_nothing_twice(store: Store, demo: DemoIds) -> None:
    before = (read_trials(store), read_metrics(store), read_evaluations(store))
    counts = [_count(store, m) for m in (Trial, TrialMetric, Evaluation)]

    again = write_demo_sweep(store)  # the driver replays everything after a crash

    assert again == demo  # same natural keys -> same ids
    assert [_count(store, m) for m in (Trial, TrialMetric, Evaluation)] == counts
    after = (read_trials(store), read_metrics(store), read_evaluations(store))
    for old, new in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(old, new)


def test_upsert_trial_updates_in_place_and_keeps_what_it_is_not_told(
    store: Store, demo: DemoIds
) -> None:
    trial_id = demo.teacher_trials[0]
    again = store.upsert_trial(
        demo.teachers, 0, role="teacher", params={"lr": 5e-3}, seed=7, status=TrialStatus.RUNNING
    )
    assert again == trial_id
    (row,) = [t for t in store.trials(demo.teachers) if t.id == trial_id]
    assert row.params == {"lr": 5e-3} and row.seed == 7 and row.status == "RUNNING"
    # optional fields not given are kept, and the outcome belongs to finish_trial
    assert row.node == "node-a" and row.tune_trial_id == "trial_00000"
    assert row.resources == {"cpu": 1, "gpu": 0}
    assert row.objective == 3.1 and row.checkpoint_uri == "/ckpt/t0"


def test_finish_trial_records_the_outcome(store: Store, demo: DemoIds) -> None:
    trial_id = demo.student_trials[1]
    store.finish_trial(trial_id, TrialStatus.FAILED, error="NaN loss")
    failed = next(t for t in store.trials(demo.students) if t.id == trial_id)
    assert failed.status == "FAILED" and failed.error == "NaN loss"
    assert failed.ended_at is not None and failed.ended_at.tzinfo is not None
    # Tune retries it and it completes: the old error is cleared
    store.upsert_trial(demo.students, 1, role="student", params=failed.params, seed=11)
    store.finish_trial(trial_id, TrialStatus.COMPLETE, objective=2.5, checkpoint_uri="/c/s1")
    done = next(t for t in store.trials(demo.students) if t.id == trial_id)
    assert (done.status, done.error, done.objective, done.checkpoint_uri) == (
        "COMPLETE",
        None,
        2.5,
        "/c/s1",
    )


def test_trials_carry_their_teachers_in_ensemble_order(store: Store, demo: DemoIds) -> None:
    rows = store.trials(demo.students)
    assert [r.number for r in rows] == [0, 1]
    assert rows[0].teacher_ids == (demo.teacher_trials[1], demo.teacher_trials[0])
    store.set_trial_teachers(rows[0].id, [demo.teacher_trials[0]])  # replaces
    assert store.trials(demo.students)[0].teacher_ids == (demo.teacher_trials[0],)


def test_ensemble_members_by_rank_with_checkpoints(store: Store, demo: DemoIds) -> None:
    members = store.ensemble_members(demo.ensemble)
    assert [(m.trial_id, m.rank, m.value) for m in members] == [
        (demo.teacher_trials[1], 0, 2.9),
        (demo.teacher_trials[0], 1, 3.1),
    ]
    assert members[0].checkpoint_uri == "/ckpt/t1" and members[0].params["lr"] == 2e-3
    store.set_ensemble(demo.ensemble, [(demo.teacher_trials[0], 0, 3.1)])
    assert [m.trial_id for m in store.ensemble_members(demo.ensemble)] == [demo.teacher_trials[0]]


def test_metrics_upsert_and_non_finite_values_become_null(store: Store, demo: DemoIds) -> None:
    trial_id = demo.student_trials[1]
    store.add_metrics(trial_id, 5, {"dev_loss": float("nan"), "grad_norm": float("inf")})
    store.add_metrics(trial_id, 5, {"train_loss": 2.0})
    store.add_metrics(trial_id, 1, {"dev_loss": 2.95})  # a replay with a new value wins
    curves = store.trial_metrics(trial_id)
    assert curves[1] == {"dev_loss": 2.95, "train_loss": 3.3}
    assert math.isnan(curves[5]["dev_loss"]) and math.isnan(curves[5]["grad_norm"])
    assert curves[5]["train_loss"] == 2.0
    with store.session(readonly=True) as session:
        stored = session.scalar(
            sa.select(TrialMetric.value).where(
                TrialMetric.trial_id == trial_id, TrialMetric.name == "grad_norm"
            )
        )
    assert stored is None
    with pytest.raises(ValueError, match="dev_loss"):
        store.add_metrics(trial_id, 6, {"dev_loss": "low"})  # type: ignore[dict-item]


def test_evaluations_upsert_on_trial_suite_task_metric(store: Store, demo: DemoIds) -> None:
    trial_id = demo.teacher_trials[0]
    n_before = _count(store, Evaluation)
    store.add_evaluations(
        trial_id,
        [
            EvaluationRow("glue", "mrpc", None, "f1", 0.75, 408),
            EvaluationRow("glue", "mrpc", None, "f1", 0.76, 408),  # last duplicate wins
        ],
    )
    assert _count(store, Evaluation) == n_before
    frame = read_evaluations(store)
    row = frame[(frame.trial_id == trial_id) & (frame.suite == "glue") & (frame.metric == "f1")]
    assert row["value"].tolist() == [0.76]


def test_sweep_with_another_config_under_the_same_name_is_refused(
    store: Store, demo: DemoIds
) -> None:
    assert store.upsert_sweep("demo", config={}, config_hash="hash-demo", code_version="x") == (
        demo.sweep
    )
    with pytest.raises(StoreError, match="rename the sweep") as err:
        store.upsert_sweep("demo", config={}, config_hash="other", code_version="x")
    assert "demo" in str(err.value)


def test_sweep_and_stage_status(store: Store, demo: DemoIds) -> None:
    store.set_sweep_status(demo.sweep, "INTERRUPTED")
    interrupted = store.get_sweep("demo")
    assert interrupted is not None and interrupted.finished_at is not None
    store.set_sweep_status(demo.sweep, "RUNNING")  # resumed
    resumed = store.get_sweep("demo")
    assert resumed is not None and resumed.status == "RUNNING" and resumed.finished_at is None
    stage = store.get_stage(demo.sweep, "students")
    assert stage is not None and stage.status == "RUNNING" and stage.optuna_study == "demo/students"
    assert store.get_stage(demo.sweep, "repeats") is None
    assert [s.name for s in store.stages(demo.sweep)] == ["teachers", "ensemble", "students"]
    with pytest.raises(ValueError):
        store.set_stage_status(demo.students, "DONE")
    with pytest.raises(StoreError, match="no sweep with id 999"):
        store.set_sweep_status(999, "COMPLETE")


def test_artifacts_latest_first_with_fingerprint(store: Store, demo: DemoIds, tmp_path) -> None:
    trial_id = demo.teacher_trials[1]
    for epoch in (1, 3, 2):
        checkpoint = tmp_path / f"epoch_{epoch}"
        checkpoint.mkdir()
        (checkpoint / "model.safetensors").write_bytes(b"w" * 10 * epoch)
        (checkpoint / "config.json").write_text("{}")
        size, sha = checkpoint_fingerprint(checkpoint)
        store.add_artifact(trial_id, str(checkpoint), iteration=epoch, size_bytes=size, sha256=sha)
    store.add_artifact(trial_id, str(tmp_path / "epoch_3"), iteration=3, size_bytes=32, sha256="a")
    store.add_artifact(trial_id, str(tmp_path / "log.txt"), kind="log")
    rows = store.checkpoint_artifacts(trial_id)
    assert [r.iteration for r in rows] == [3, 2, 1]  # one row per uri, checkpoints only
    assert rows[0].size_bytes == 32 and rows[1].size_bytes == 22 and len(rows[1].sha256 or "") == 64


def test_checkpoint_fingerprint_covers_names_and_contents(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "x.bin").write_bytes(b"123")
        (root / "y.json").write_text("{}")
    assert (
        checkpoint_fingerprint(a) == checkpoint_fingerprint(b) and checkpoint_fingerprint(a)[0] == 5
    )
    (b / "y.json").rename(b / "z.json")
    assert checkpoint_fingerprint(a)[1] != checkpoint_fingerprint(b)[1]
    single = a / "y.json"
    assert checkpoint_fingerprint(single) == (
        2,
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    )
    with pytest.raises(StoreError, match="does not exist"):
        checkpoint_fingerprint(tmp_path / "missing")


def test_timestamps_come_back_as_utc(store: Store, demo: DemoIds) -> None:
    paris = timezone(timedelta(hours=1))
    trial_id = store.upsert_trial(
        demo.students,
        9,
        role="student",
        params={},
        seed=0,
        started_at=datetime(2025, 3, 1, 14, 0, tzinfo=paris),
    )
    row = next(t for t in store.trials(demo.students) if t.id == trial_id)
    assert row.started_at == datetime(2025, 3, 1, 13, 0, tzinfo=UTC)
    assert row.started_at is not None and row.started_at.utcoffset() == timedelta(0)


def test_json_documents_survive_nan_and_paths(store: Store, demo: DemoIds, tmp_path) -> None:
    trial_id = store.upsert_trial(
        demo.students,
        8,
        role="student",
        seed=0,
        params={"lr": float("nan"), "steps": (1, 2)},
        config={"data": tmp_path, "nested": {"x": float("inf")}},
    )
    row = next(t for t in store.trials(demo.students) if t.id == trial_id)
    assert row.params == {"lr": None, "steps": [1, 2]}
    assert row.config == {"data": str(tmp_path), "nested": {"x": None}}


def test_a_failed_write_leaves_nothing_half_written(store: Store, demo: DemoIds) -> None:
    student = demo.student_trials[0]
    with pytest.raises(StoreError, match=r"refused the write.*does not exist"):
        store.set_trial_teachers(student, [demo.teacher_trials[0], 123456])
    # the delete that preceded the failing insert was rolled back
    assert store.trials(demo.students)[0].teacher_ids == (
        demo.teacher_trials[1],
        demo.teacher_trials[0],
    )
    with pytest.raises(StoreError), store.session() as session:
        session.add(TrialMetric(trial_id=987654, iteration=1, name="x", value=1.0))
    with pytest.raises(KeyError), store.session() as session:  # not a driver error: as is
        session.add(TrialMetric(trial_id=student, iteration=99, name="x", value=1.0))
        raise KeyError("boom")
    assert 99 not in store.trial_metrics(student)


def test_store_pickles_without_its_engine(store: Store, demo: DemoIds) -> None:
    clone = pickle.loads(pickle.dumps(store))
    try:
        assert clone.url == store.url and clone.get_sweep_id("demo") == demo.sweep
    finally:
        clone.dispose()
