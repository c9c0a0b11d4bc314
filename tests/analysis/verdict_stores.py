"""Small finished studies written through the real Store API, for the verdict's regression tests.

`write_study` writes a teachers and a students search, seed repeats of each search's chosen
config and, optionally, a data-scale reference, with every number known in advance: the
report's verdicts can then be checked against what was planted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from sweep.store import EvaluationRow, Store, TrialStatus
from tests.analysis.conftest import PARADIGMS

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TASKS = [(group, task) for group, tasks in PARADIGMS.items() for task in tasks]


@dataclass(frozen=True)
class Plan:
    """What to plant. BLiMP is a fraction, losses are nats per token."""

    name: str = "study"
    teacher_epochs: int = 2
    student_epochs: int = 2
    pool: int = 6
    seeds: int = 5
    student_blimp: float = 0.60
    teacher_blimp: float = 0.60
    reference_blimp: float | None = None
    """None: no reference stage."""
    loss_per_blimp: float = 5.0
    pairs_per_paradigm: int = 1000
    noise: float = 0.004
    """Seed noise of one run's BLiMP; a shared seed component pairs the sides."""


def _blimp_rows(
    rng: np.random.Generator, level: float, n: int
) -> tuple[list[EvaluationRow], float]:
    """Per-paradigm rows with their counts and the overall row WITHOUT one, as the trainable
    writes them (sweep/trainable.py)."""
    rows, scores = [], []
    for group, task in TASKS:
        value = round(float(np.clip(level + rng.normal(0, 0.01), 0, 1)) * n) / n
        scores.append(value)
        rows.append(EvaluationRow("blimp", task, group, "accuracy", value, n))
    overall = float(np.mean(scores))
    rows.append(EvaluationRow("blimp", "overall", None, "accuracy", overall, None))
    return rows, overall


def write_study(url: str, plan: Plan, *, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    config = {
        "name": plan.name,
        "stages": {
            "teachers": {"kind": "teachers", "trials": plan.pool, "epochs": plan.teacher_epochs},
            "students": {"kind": "students", "trials": plan.pool, "epochs": plan.student_epochs},
        },
    }  # fmt: skip
    with Store(url) as store:
        sweep_id = store.upsert_sweep(
            plan.name, config=config, config_hash=f"hash-{plan.name}", code_version="test"
        )
        clock = iter(range(10_000))

        def trial(
            stage_id: int,
            number: int,
            role: str,
            level: float,
            epochs: int,
            *,
            trial_seed: int,
            source: int | None = None,
            teachers: list[int] | None = None,
            tokens: int = 100_000,
        ) -> int:
            start = T0 + timedelta(minutes=next(clock))
            tid = store.upsert_trial(
                stage_id,
                number,
                role=role,
                params={"lr": 1e-3 * (1 + number), "batch_size": 16},
                seed=trial_seed,
                node="node-a",
                source_trial_id=source,
                started_at=start,
                data_tokens=tokens,
            )
            if teachers:
                store.set_trial_teachers(tid, teachers)
            rows, blimp = _blimp_rows(rng, level, plan.pairs_per_paradigm)
            loss = 4.0 - plan.loss_per_blimp * (blimp - 0.6)
            for epoch in range(1, epochs + 1):
                values = {"dev_loss": loss + 0.2 * (epochs - epoch)}
                if epoch == epochs:
                    values["test_loss"] = loss + 0.05
                store.add_metrics(tid, epoch, values)
            store.add_evaluations(tid, rows)
            store.finish_trial(
                tid, TrialStatus.COMPLETE, objective=loss, ended_at=start + timedelta(seconds=50)
            )
            return tid

        def stage(name: str, kind: str) -> int:
            return store.upsert_stage(
                sweep_id,
                name,
                kind=kind,
                optuna_study=f"{plan.name}/{name}",
                objective_name="dev_loss",
            )

        t_stage, s_stage = stage("teachers", "teachers"), stage("students", "students")
        teachers = [
            trial(t_stage, i, "teacher", plan.teacher_blimp + rng.normal(0, 0.01), plan.teacher_epochs, trial_seed=i)
            for i in range(plan.pool)
        ]  # fmt: skip
        students = [
            trial(s_stage, i, "student", plan.student_blimp + rng.normal(0, 0.01), plan.student_epochs,
                  trial_seed=i, teachers=teachers[:2])
            for i in range(plan.pool)
        ]  # fmt: skip
        r_stage = stage("repeats", "repeats")
        ref_stage = stage("reference", "reference") if plan.reference_blimp is not None else None
        for j in range(plan.seeds):
            shared = rng.normal(0, plan.noise)
            s = 10_000 + j
            trial(r_stage, j, "teacher", plan.teacher_blimp + shared + rng.normal(0, plan.noise),
                  plan.teacher_epochs, trial_seed=s, source=teachers[0])  # fmt: skip
            trial(r_stage, plan.seeds + j, "student",
                  plan.student_blimp + shared + rng.normal(0, plan.noise), plan.student_epochs,
                  trial_seed=s, source=students[0], teachers=teachers[:2])  # fmt: skip
            if ref_stage is not None and plan.reference_blimp is not None:
                trial(ref_stage, j, "teacher",
                      plan.reference_blimp + shared + rng.normal(0, plan.noise),
                      plan.teacher_epochs, trial_seed=s, source=teachers[0], tokens=1_000_000)  # fmt: skip
        store.set_sweep_status(sweep_id, "COMPLETE")
