"""What the store tests write: a small demo sweep, a concurrent metric writer, and a
separate-process writer for `sweep status` (run as a script, see main()).

Kept outside the test modules so spawned processes import it without pytest.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sweep.store import EvaluationRow, Store, TrialStatus
from sweep.store.models import Trial

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CONFIG = {"name": "demo", "teachers": {"n_trials": 4}, "lr": [1e-4, 1e-2]}


@dataclass
class DemoIds:
    sweep: int
    teachers: int
    ensemble: int
    students: int
    teacher_trials: list[int]
    student_trials: list[int]


def write_demo_sweep(store: Store, name: str = "demo") -> DemoIds:
    """Teachers 0..3 (COMPLETE 3.1, COMPLETE 2.9, PRUNED, FAILED), an ensemble of the two
    complete ones, students 0..1 (COMPLETE 2.7 distilled from both teachers, RUNNING)."""
    sweep = store.upsert_sweep(name, config=CONFIG, config_hash="hash-demo", code_version="0.1.0")
    store.set_sweep_status(sweep, "RUNNING")
    teachers = store.upsert_stage(
        sweep, "teachers", optuna_study=f"{name}/teachers", objective_name="dev_loss"
    )
    store.set_stage_status(teachers, "COMPLETE")
    outcomes: list[tuple[TrialStatus, float | None, str | None]] = [
        (TrialStatus.COMPLETE, 3.1, None),
        (TrialStatus.COMPLETE, 2.9, None),
        (TrialStatus.PRUNED, 3.8, None),
        (TrialStatus.FAILED, None, "CUDA out of memory"),
    ]
    teacher_trials = []
    for number, (status, objective, error) in enumerate(outcomes):
        trial = store.upsert_trial(
            teachers,
            number,
            role="teacher",
            params={"lr": 1e-3 * (number + 1), "batch_size": 32, "model": {"layers": 2}},
            seed=number,
            tune_trial_id=f"trial_{number:05d}",
            optuna_trial_number=number,
            resources={"cpu": 1, "gpu": 0},
            node="node-a",
            config={"lr": 1e-3 * (number + 1)},
            started_at=T0 + timedelta(minutes=number),
        )
        for epoch in range(1, 4 if status != TrialStatus.PRUNED else 2):
            store.add_metrics(
                trial,
                epoch,
                {"dev_loss": (objective or 4.0) + 1.0 / epoch, "train_loss": 4.0 - epoch * 0.1},
            )
        store.add_metrics(trial, 3, {"tokens_per_s": 4000.0 + number})
        store.finish_trial(
            trial,
            status,
            objective=objective,
            error=error,
            checkpoint_uri=f"/ckpt/t{number}" if status == TrialStatus.COMPLETE else None,
            ended_at=T0 + timedelta(minutes=number + 10),
        )
        teacher_trials.append(trial)
    for trial, accuracy in zip(teacher_trials[:2], (0.61, 0.64), strict=True):
        store.add_evaluations(
            trial,
            [
                EvaluationRow(
                    "blimp",
                    "anaphor_gender_agreement",
                    "anaphor_agreement",
                    "accuracy",
                    accuracy - 0.05,
                    1000,
                ),
                EvaluationRow(
                    "blimp",
                    "regular_plural_subject_verb_agreement_1",
                    "subject_verb_agreement",
                    "accuracy",
                    accuracy + 0.05,
                    1000,
                ),
                EvaluationRow("glue", "mrpc", None, "f1", 0.7, 408),
                EvaluationRow("glue", "mrpc", None, "accuracy", 0.68, 408),
            ],
        )
    ensemble = store.upsert_stage(sweep, "ensemble")
    store.set_ensemble(ensemble, [(teacher_trials[1], 0, 2.9), (teacher_trials[0], 1, 3.1)])
    store.set_stage_status(ensemble, "COMPLETE")
    students = store.upsert_stage(
        sweep, "students", optuna_study=f"{name}/students", objective_name="dev_loss"
    )
    store.set_stage_status(students, "RUNNING")
    student_trials = []
    for number, status in enumerate((TrialStatus.COMPLETE, TrialStatus.RUNNING)):
        trial = store.upsert_trial(
            students,
            number,
            role="student",
            params={"lr": 7e-4, "alpha": 0.5, "temperature": 1.0 + number, "batch_size": 64},
            seed=10 + number,
            started_at=T0 + timedelta(hours=1, minutes=number),
        )
        store.set_trial_teachers(trial, [teacher_trials[1], teacher_trials[0]])
        store.add_metrics(trial, 1, {"dev_loss": 3.0, "train_loss": 3.3})
        if status == TrialStatus.COMPLETE:
            store.add_metrics(trial, 2, {"dev_loss": 2.7, "train_loss": 3.0})
            store.add_evaluations(
                trial,
                [EvaluationRow("blimp", "overall", None, "accuracy", 0.66, 2000)],
            )
            store.finish_trial(
                trial, status, objective=2.7, ended_at=T0 + timedelta(hours=1, minutes=30)
            )
        student_trials.append(trial)
    return DemoIds(sweep, teachers, ensemble, students, teacher_trials, student_trials)


def write_metrics(url: str, worker: int, n_writes: int, barrier: Any, errors: Any) -> None:
    """One of several processes: open the store (racing the others to create it), register
    a trial shared with another worker, then write `n_writes` metric rows one by one."""
    try:
        barrier.wait()
        store = Store(url)
        sweep = store.upsert_sweep("race", config={}, config_hash="h", code_version="t")
        stage = store.upsert_stage(sweep, "teachers")
        trial = store.upsert_trial(stage, worker % 4, role="teacher", params={}, seed=0)
        barrier.wait()
        for i in range(n_writes):
            # own series plus a series every worker of this trial writes too (same keys)
            store.add_metrics(trial, i, {f"w{worker}": float(i), "shared": float(i)})
        store.dispose()
    except BaseException as exc:
        errors.put(f"worker {worker}: {type(exc).__name__}: {exc}")
        raise


def main(url: str) -> None:
    """Write the demo sweep, then hold a write transaction open (an uncommitted trial)
    until stdin closes, as a running sweep would; finally commit and end the sweep."""
    store = Store(url)
    ids = write_demo_sweep(store)
    with store.session() as session:
        session.add(
            Trial(
                stage_id=ids.students,
                number=2,
                role="student",
                status="RUNNING",
                params={"lr": 1e-3},
                seed=12,
            )
        )
        session.flush()  # the row is written (and SQLite's write lock held) but not committed
        print("holding", flush=True)
        sys.stdin.read()
    store.set_sweep_status(ids.sweep, "COMPLETE")
    print("done", flush=True)
    time.sleep(0.1)
    store.dispose()


if __name__ == "__main__":
    main(sys.argv[1])
