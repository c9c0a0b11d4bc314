"""The read API for analysis/: frames with the right content, read without blocking writers."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from store_scenarios import DemoIds, write_demo_sweep

from sweep.store import (
    Store,
    StoreError,
    read_ensemble,
    read_evaluations,
    read_metrics,
    read_sweeps,
    read_trials,
    upgrade,
)
from sweep.store.read import (
    ENSEMBLE_COLUMNS,
    EVALUATION_COLUMNS,
    METRIC_COLUMNS,
    SWEEP_COLUMNS,
    TRIAL_COLUMNS,
)

REPO = Path(__file__).resolve().parents[2]
COUNT_METRICS = sa.text("select count(*) from trial_metric")


def test_read_trials_one_row_per_trial_with_params_final_metrics_and_blimp(
    store: Store, demo: DemoIds
) -> None:
    frame = read_trials(store)
    assert list(frame.columns[: len(TRIAL_COLUMNS)]) == TRIAL_COLUMNS
    assert len(frame) == 6 and set(frame.sweep) == {"demo"}
    assert frame.stage.tolist() == ["teachers"] * 4 + ["students"] * 2
    teachers = frame[frame.stage == "teachers"].set_index("number")
    assert teachers.status.tolist() == ["COMPLETE", "COMPLETE", "PRUNED", "FAILED"]
    assert teachers.loc[1, "objective"] == 2.9 and math.isnan(teachers.loc[3, "objective"])
    assert teachers.loc[3, "error"] == "CUDA out of memory"
    assert teachers.loc[0, "duration_s"] == 600.0
    # params flattened, integer params stay integer
    assert teachers.loc[1, "param_lr"] == pytest.approx(2e-3)
    assert teachers["param_batch_size"].dtype == "Int64"
    assert teachers.loc[0, "param_model.layers"] == 2
    # each metric at the trial's last iteration it was reported
    assert teachers.loc[1, "dev_loss"] == pytest.approx(2.9 + 1 / 3)
    assert teachers.loc[2, "dev_loss"] == pytest.approx(3.8 + 1.0)  # pruned after epoch 1
    assert teachers.loc[2, "tokens_per_s"] == 4002.0
    # BLiMP: the mean over paradigms when there is no overall row
    assert teachers.loc[0, "blimp_overall"] == pytest.approx(0.61)
    assert math.isnan(teachers.loc[2, "blimp_overall"])
    assert teachers.loc[1, "glue_mrpc_f1"] == 0.7 and teachers.loc[1, "glue_mrpc_accuracy"] == 0.68
    students = frame[frame.stage == "students"].set_index("number")
    assert students.loc[0, "blimp_overall"] == 0.66  # the overall row
    assert students.loc[0, "teacher_ids"] == [demo.teacher_trials[1], demo.teacher_trials[0]]
    assert students.loc[1, "status"] == "RUNNING" and math.isnan(students.loc[1, "duration_s"])
    assert (
        str(frame.started_at.dtype).startswith("datetime64") and frame.started_at.dt.tz is not None
    )


def test_read_metrics_evaluations_ensemble_sweeps(store: Store, demo: DemoIds) -> None:
    metrics = read_metrics(store)
    assert list(metrics.columns) == METRIC_COLUMNS
    curve = metrics[(metrics.trial_id == demo.teacher_trials[0]) & (metrics.name == "dev_loss")]
    assert curve.iteration.tolist() == [1, 2, 3]
    assert curve.value.tolist() == pytest.approx([4.1, 3.6, 3.1 + 1 / 3])

    evaluations = read_evaluations(store)
    assert list(evaluations.columns) == EVALUATION_COLUMNS
    blimp = evaluations[
        (evaluations.suite == "blimp") & (evaluations.trial_id == demo.teacher_trials[0])
    ]
    assert set(blimp.group.dropna()) == {"anaphor_agreement", "subject_verb_agreement"}
    assert blimp.n.tolist() == [1000, 1000]

    ensemble = read_ensemble(store)
    assert list(ensemble.columns) == ENSEMBLE_COLUMNS
    assert ensemble.trial_id.tolist() == [demo.teacher_trials[1], demo.teacher_trials[0]]
    assert ensemble["rank"].tolist() == [0, 1]

    sweeps = read_sweeps(store)
    assert list(sweeps.columns) == SWEEP_COLUMNS
    assert sweeps.loc[0, "sweep"] == "demo" and sweeps.loc[0, "n_trials"] == 6


def test_readers_choose_a_sweep_and_name_the_others(store: Store, demo: DemoIds) -> None:
    write_demo_sweep(store, name="other")
    assert set(read_trials(store).sweep) == {"demo", "other"}
    assert set(read_trials(store, "other").sweep) == {"other"}
    assert set(read_metrics(store, "demo").sweep) == {"demo"}
    with pytest.raises(StoreError, match="no sweep named 'nope'") as err:
        read_evaluations(store, "nope")
    assert "'demo'" in str(err.value) and "'other'" in str(err.value)


def test_readers_take_a_url_and_never_migrate(store_url: str, store: Store, demo: DemoIds) -> None:
    frame = read_trials(store_url, "demo")
    assert len(frame) == 6


def test_empty_store_gives_empty_frames_with_the_columns(store: Store) -> None:
    assert list(read_trials(store).columns) == [*TRIAL_COLUMNS, "blimp_overall"]
    assert read_metrics(store).empty and list(read_metrics(store).columns) == METRIC_COLUMNS
    assert read_sweeps(store).empty and read_ensemble(store).empty


def test_reading_while_a_writer_holds_its_transaction(store: Store, demo: DemoIds) -> None:
    """A running sweep's open write transaction never blocks a reader (WAL / MVCC), and the
    reader sees only committed rows."""
    with store.session() as session:
        store_rows = len(read_trials(store))
        from sweep.store.models import Trial

        session.add(
            Trial(
                stage_id=demo.students,
                number=7,
                role="student",
                status="RUNNING",
                params={},
                seed=0,
            )
        )
        session.flush()  # written, locked, not committed
        during = read_trials(store)
        assert len(during) == store_rows == 6
    assert len(read_trials(store)) == 7


def test_an_open_reader_never_blocks_a_writer(store: Store, demo: DemoIds) -> None:
    with store.session(readonly=True) as reader:
        before = reader.scalar(COUNT_METRICS)
        store.add_metrics(demo.student_trials[1], 9, {"dev_loss": 2.0})
        # the reader keeps its snapshot
        assert reader.scalar(COUNT_METRICS) == before
    assert 9 in store.trial_metrics(demo.student_trials[1])


def test_the_store_imports_neither_torch_nor_ray() -> None:
    """analysis/ reads through sweep.store, and nothing in analysis/ may import torch or ray."""
    code = (
        "import sys, sweep.store\n"
        "heavy = sorted({'torch', 'ray'} & set(sys.modules))\n"
        "sys.exit(', '.join(heavy) or None)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr


def test_old_stores_read_with_derived_columns(tmp_path: Path) -> None:
    """A stage written without a kind (before revision 0004) reads as its name's kind."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO sweep (id, name, config, config_hash, status, code_version,"
                " created_at, updated_at) VALUES (1, 'old', '{}', 'h', 'COMPLETE', '0', :t, :t)"
            ),
            {"t": "2025-01-01 00:00:00"},
        )
        for stage_id, name in ((1, "teachers"), (2, "repeats")):
            conn.execute(
                sa.text(
                    "INSERT INTO stage (id, sweep_id, name, status, direction, created_at,"
                    " updated_at) VALUES (:i, 1, :n, 'COMPLETE', 'minimize', :t, :t)"
                ),
                {"i": stage_id, "n": name, "t": "2025-01-01 00:00:00"},
            )
        for trial_id, stage_id, source in ((1, 1, None), (2, 2, 1)):
            conn.execute(
                sa.text(
                    "INSERT INTO trial (id, stage_id, number, role, status, params, seed,"
                    " source_trial_id, updated_at) VALUES (:i, :s, 0, 'teacher', 'COMPLETE',"
                    " '{}', 0, :src, :t)"
                ),
                {"i": trial_id, "s": stage_id, "src": source, "t": "2025-01-01 00:00:00"},
            )
    engine.dispose()
    with Store(url) as store:  # migrates to head
        frame = read_trials(store, "old")
    assert list(frame["stage_kind"]) == ["teachers", "repeats"]
    assert list(frame["source_stage"].fillna("-")) == ["-", "teachers"]
    assert list(frame["ensemble_size"]) == [0, 0]
    assert frame["data_tokens"].isna().all()
