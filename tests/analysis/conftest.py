"""A synthetic sweep with known numbers, written through the real Store (and Optuna studies into
the same SQLite database), so the report's numbers can be checked against ground truth."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from sweep.store import EvaluationRow, Store, TrialStatus

# Real BLiMP paradigm names, two per phenomenon group (the full benchmark has 67).
PARADIGMS = {
    "anaphor_agreement": ["anaphor_gender_agreement", "anaphor_number_agreement"],
    "argument_structure": ["causative", "drop_argument"],
    "binding": ["principle_A_c_command", "principle_A_case_1"],
    "control_raising": ["existential_there_object_raising", "existential_there_subject_raising"],
    "determiner_noun_agreement": ["determiner_noun_agreement_1", "determiner_noun_agreement_2"],
    "ellipsis": ["ellipsis_n_bar_1", "ellipsis_n_bar_2"],
    "filler_gap_dependency": ["wh_questions_object_gap", "wh_questions_subject_gap"],
    "irregular_forms": ["irregular_past_participle_adjectives", "irregular_past_participle_verbs"],
    "island_effects": ["adjunct_island", "complex_NP_island"],
    "npi_licensing": ["matrix_question_npi_licensor_present", "npi_present_1"],
    "quantifiers": ["existential_there_quantifiers_1", "existential_there_quantifiers_2"],
    "subject_verb_agreement": [
        "distractor_agreement_relational_noun",
        "distractor_agreement_relative_clause",
    ],
}
PAIRS = 1000
EPOCHS = 3
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class SynthTrial:
    """Ground truth of one trial as written to the store."""

    key: str
    stage: str
    number: int
    role: str
    status: str
    seed: int
    params: dict[str, Any]
    node: str
    start_s: float
    end_s: float | None
    dev_loss: float | None = None
    paradigms: dict[str, float] = field(default_factory=dict)
    source: str | None = None
    teachers: list[str] = field(default_factory=list)
    trial_id: int = -1
    test_loss: float | None = None
    """Held-out loss written with the last epoch (COMPLETE trials only)."""

    @property
    def blimp(self) -> float | None:
        """The overall BLiMP accuracy written: the mean over paradigms."""
        return float(np.mean(list(self.paradigms.values()))) if self.paradigms else None


@dataclass
class SynthSweep:
    name: str
    trials: list[SynthTrial]
    config: dict[str, Any] = field(default_factory=dict)
    """Stored as the sweep's resolved config, beside its name."""

    def of(self, stage: str, role: str | None = None, status: str = "COMPLETE") -> list[SynthTrial]:
        return [
            t
            for t in self.trials
            if t.stage == stage and (role is None or t.role == role) and t.status == status
        ]

    def by_key(self, key: str) -> SynthTrial:
        return next(t for t in self.trials if t.key == key)


def _paradigm_scores(
    rng: np.random.Generator, level: float, boost: float = 0.0
) -> dict[str, float]:
    """Accuracies on PAIRS pairs (multiples of 1/PAIRS); `boost` lifts the island/binding groups."""
    scores = {}
    for group, tasks in PARADIGMS.items():
        for i, task in enumerate(tasks):
            shift = boost if group in ("island_effects", "binding") else 0.0
            value = level + shift + 0.06 * np.sin(3 * i + len(group)) + rng.normal(0, 0.01)
            scores[task] = round(float(np.clip(value, 0.0, 1.0)) * PAIRS) / PAIRS
    return scores


def make_sweep(name: str = "demo", *, seed: int = 0) -> SynthSweep:
    """Teachers (6 complete, 1 pruned, 1 failed), students (8 complete, 1 pruned), 2 matched
    baselines, 3 teacher and 3 student seed repeats, on two worker nodes."""
    rng = np.random.default_rng(seed)
    trials: list[SynthTrial] = []
    clock = {"node-a": 0.0, "node-b": 0.0}

    def add(
        stage: str,
        number: int,
        role: str,
        status: str,
        params: dict[str, Any],
        dev_loss: float,
        level: float,
        boost: float = 0.0,
        **kw: Any,
    ) -> SynthTrial:
        trial_seed = kw.pop("seed", number)
        node = min(clock, key=lambda n: clock[n])
        start = clock[node] + 5.0
        length = 60.0 + 10.0 * number
        end = None if status == "RUNNING" else start + length
        clock[node] = start + length
        t = SynthTrial(
            key=f"{stage}/{number}",
            stage=stage,
            number=number,
            role=role,
            status=status,
            seed=trial_seed,
            params=params,
            node=node,
            start_s=start,
            end_s=end,
            dev_loss=dev_loss if status in ("COMPLETE", "PRUNED") else None,
            paradigms=_paradigm_scores(rng, level, boost) if status == "COMPLETE" else {},
            # test and dev disagree in places: the report must read test
            test_loss=dev_loss + 0.1 + float(rng.normal(0, 0.03)) if status == "COMPLETE" else None,
            **kw,
        )
        trials.append(t)
        return t

    statuses = ["COMPLETE"] * 6 + ["PRUNED", "FAILED"]
    for i, status in enumerate(statuses):
        lr = float(10 ** rng.uniform(-4, -2))
        params = {"lr": lr, "batch_size": int(rng.choice([8, 16, 32])), "weight_decay": 0.1}
        quality = -abs(np.log10(lr) + 3)  # best near lr = 1e-3
        add(
            "teachers",
            i,
            "teacher",
            status,
            params,
            4.0 - 0.3 * quality + rng.normal(0, 0.02),
            0.60 + 0.03 * quality,
        )
    teachers = [t.key for t in trials if t.status == "COMPLETE"][:2]
    for i, status in enumerate(["COMPLETE"] * 8 + ["PRUNED"]):
        alpha = float(rng.uniform(0.0, 1.0))
        params = {
            "lr": float(10 ** rng.uniform(-3.5, -2.5)),
            "batch_size": int(rng.choice([8, 16, 32])),
            "weight_decay": 0.1,
            "alpha": alpha,
            "temperature": float(rng.uniform(0.5, 4.0)),
        }
        add(
            "students",
            i,
            "student",
            status,
            params,
            3.9 + 0.2 * alpha + rng.normal(0, 0.02),
            0.64 - 0.04 * alpha,
            boost=0.08,
            teachers=teachers,
        )
    by_loss = sorted(
        (t for t in trials if t.stage == "students" and t.status == "COMPLETE"),
        key=lambda t: t.dev_loss or 0.0,
    )
    for i, source in enumerate(by_loss[:2]):
        add(
            "baselines",
            i,
            "student",
            "COMPLETE",
            {**source.params, "alpha": 1.0},
            source.dev_loss + 0.05,
            (source.blimp or 0) - 0.01 + 0.005 * i,
            seed=source.seed,
            source=source.key,
        )
    best_teacher = min(
        (t for t in trials if t.stage == "teachers" and t.status == "COMPLETE"),
        key=lambda t: t.dev_loss or 0.0,
    )
    for i in range(3):
        add(
            "repeats",
            i,
            "teacher",
            "COMPLETE",
            best_teacher.params,
            3.95 + 0.01 * i,
            0.600 + 0.004 * i,
            seed=100 + i,
            source=best_teacher.key,
        )
        add(
            "repeats",
            3 + i,
            "student",
            "COMPLETE",
            by_loss[0].params,
            3.93 + 0.01 * i,
            0.640 + 0.004 * i,
            boost=0.08,
            seed=100 + i,
            source=by_loss[0].key,
            teachers=teachers,
        )
    return SynthSweep(name, trials)


def make_thin_sweep(name: str = "thin") -> SynthSweep:
    """One teacher and one student trial, one seed: nothing can be concluded."""
    rng = np.random.default_rng(1)
    return SynthSweep(
        name,
        [
            SynthTrial(
                "teachers/0",
                "teachers",
                0,
                "teacher",
                "COMPLETE",
                0,
                {"lr": 1e-3, "batch_size": 16},
                "node-a",
                0.0,
                60.0,
                4.0,
                _paradigm_scores(rng, 0.6),
                test_loss=4.1,
            ),
            SynthTrial(
                "students/0",
                "students",
                0,
                "student",
                "COMPLETE",
                0,
                {"lr": 1e-3, "batch_size": 16, "alpha": 0.5, "temperature": 1.0},
                "node-a",
                70.0,
                130.0,
                3.9,
                _paradigm_scores(rng, 0.62),
                teachers=["teachers/0"],
                test_loss=4.0,
            ),
        ],
    )


def glue_scores(t: SynthTrial) -> dict[tuple[str, str], float]:
    """GLUE results of a repeat trial, derived from its seed and role."""
    lift = 0.02 if t.role == "student" else 0.0
    return {
        ("mrpc", "accuracy"): 0.66 + lift + 0.005 * (t.seed % 3),
        ("mrpc", "f1"): 0.78 + lift - 0.004 * (t.seed % 3),
        ("rte", "accuracy"): 0.53 + lift + 0.003 * (t.seed % 3),
    }


GLUE_MAJORITY = {
    ("mrpc", "majority_class"): 1.0,
    ("mrpc", "majority_accuracy"): 0.69,
    ("mrpc", "majority_f1"): 1.38 / 1.69,
    ("rte", "majority_class"): 0.0,
    ("rte", "majority_accuracy"): 0.5,
}
"""What trainers store beside each task's scores: the majority class of the dev examples
(MRPC: always 'paraphrase' on the demo's first 100 dev pairs) and its metrics."""


def _curve(final: float, epochs: int) -> list[float]:
    return [final + 0.3 * (epochs - 1 - e) for e in range(epochs)]  # ends at `final`


TOKENS_PER_EPOCH = 100_000
PARAMETERS = 1_000_000
EVAL_TOKENS = 4_000


def _cost_metrics(t: SynthTrial, epoch: int, *, last: bool) -> dict[str, float]:
    """What a trial reports of its cost (sweep.store.cost): a K-teacher student trains at
    about 3 / (3 + K) of the throughput of a model without teachers, plus overheads."""
    k = len(t.teachers)
    return {
        "tokens_seen": float(epoch * TOKENS_PER_EPOCH),
        "num_parameters": float(PARAMETERS),
        "teacher_parameters": float(k * PARAMETERS),
        "eval_tokens": float(EVAL_TOKENS * (epoch + (1 if last else 0))),
        "tokens_per_s": 4000.0 * 3 / (3 + 1.1 * k) * (1 + 0.01 * (t.number % 3)),
    }


def write_store(url: str, synth: SynthSweep) -> None:
    """Write the synthetic sweep through the Store API, and its Optuna studies beside it."""
    with Store(url) as store:
        sweep_id = store.upsert_sweep(
            synth.name,
            config={"name": synth.name, **synth.config},
            config_hash=f"hash-{synth.name}",
            code_version="0.1.0+test",
        )
        stages: dict[str, int] = {}
        for t in synth.trials:
            if t.stage not in stages:
                stages[t.stage] = store.upsert_stage(
                    sweep_id,
                    t.stage,
                    optuna_study=f"{synth.name}/{t.stage}",
                    objective_name="dev_loss",
                )
            source = synth.by_key(t.source).trial_id if t.source else None
            t.trial_id = store.upsert_trial(
                stages[t.stage],
                t.number,
                role=t.role,
                params=t.params,
                seed=t.seed,
                node=t.node,
                source_trial_id=source,
                started_at=T0 + timedelta(seconds=t.start_s),
                resources={"cpu": 1, "gpu": 0},
            )
            if t.teachers:
                store.set_trial_teachers(t.trial_id, [synth.by_key(k).trial_id for k in t.teachers])
            if t.dev_loss is not None:
                epochs = EPOCHS if t.status == "COMPLETE" else 1
                for epoch, loss in enumerate(_curve(t.dev_loss, epochs), start=1):
                    values = {"dev_loss": loss, "train_loss": loss + 0.1}
                    values.update(_cost_metrics(t, epoch, last=epoch == EPOCHS))
                    if epoch == epochs and t.test_loss is not None:
                        values["test_loss"] = t.test_loss
                    store.add_metrics(t.trial_id, epoch, values)
            if t.paradigms:
                rows = [
                    EvaluationRow("blimp", task, group, "accuracy", t.paradigms[task], PAIRS)
                    for group, tasks in PARADIGMS.items()
                    for task in tasks
                ]
                rows.append(
                    EvaluationRow(
                        "blimp", "overall", None, "accuracy", t.blimp, PAIRS * len(t.paradigms)
                    )
                )
                if t.stage == "repeats":  # GLUE fine-tunes the repeats, as sweep.yaml's default
                    rows += [
                        EvaluationRow("glue", task, None, metric, value, 400)
                        for (task, metric), value in {**glue_scores(t), **GLUE_MAJORITY}.items()
                    ]
                store.add_evaluations(t.trial_id, rows)
            if t.status != "RUNNING":
                store.finish_trial(
                    t.trial_id,
                    TrialStatus(t.status),
                    objective=t.dev_loss,
                    error="CUDA out of memory" if t.status == "FAILED" else None,
                    ended_at=T0 + timedelta(seconds=t.end_s or 0.0),
                )
        store.set_sweep_status(sweep_id, "COMPLETE")
    _write_studies(url, synth)


def _write_studies(url: str, synth: SynthSweep) -> None:
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": optuna.distributions.CategoricalDistribution([8, 16, 32]),
        "alpha": optuna.distributions.FloatDistribution(0.0, 1.0),
        "temperature": optuna.distributions.FloatDistribution(0.5, 4.0),
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # one storage, closed at the end: a written store is settled (no connection left holding
    # SQLite's WAL open until garbage collection happens to close it)
    storage = optuna.storages.RDBStorage(url)
    for stage in ("teachers", "students"):
        study = optuna.create_study(
            study_name=f"{synth.name}/{stage}",
            storage=storage,
            direction="minimize",
            load_if_exists=True,
        )
        for t in synth.trials:
            if t.stage != stage or t.status not in ("COMPLETE", "PRUNED"):
                continue
            params = {k: v for k, v in t.params.items() if k in dists}
            state = optuna.trial.TrialState[t.status]
            study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions={k: dists[k] for k in params},
                    value=t.dev_loss if state == optuna.trial.TrialState.COMPLETE else None,
                    intermediate_values={1: t.dev_loss} if t.dev_loss is not None else None,
                    state=state,
                )
            )
    storage.engine.dispose()


@pytest.fixture(scope="session")
def demo_sweep() -> SynthSweep:
    return make_sweep()


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory, demo_sweep: SynthSweep) -> str:
    """A SQLite store holding the demo sweep (trial ids filled into demo_sweep)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'sweep.db'}"
    write_store(url, demo_sweep)
    return url


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory: pytest.TempPathFactory, demo_store: str) -> Path:
    from analysis.report import write_report

    return write_report(demo_store, tmp_path_factory.mktemp("report") / "report.html", sweep="demo")


@pytest.fixture(scope="session")
def thin_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('thin') / 'sweep.db'}"
    write_store(url, make_thin_sweep())
    return url


@pytest.fixture(scope="session")
def thin_report(tmp_path_factory: pytest.TempPathFactory, thin_store: str) -> Path:
    from analysis.report import write_report

    return write_report(thin_store, tmp_path_factory.mktemp("thin-report") / "report.html")


@pytest.fixture(scope="session")
def write_thin_sweep() -> Callable[[str, str], SynthSweep]:
    """Write a one-teacher, one-student sweep called `name` into the store at `url`."""

    def write(url: str, name: str) -> SynthSweep:
        synth = make_thin_sweep(name)
        write_store(url, synth)
        return synth

    return write


@pytest.fixture(scope="session", name="glue_scores")
def glue_scores_fixture() -> Callable[[SynthTrial], dict[tuple[str, str], float]]:
    """The GLUE ground truth of a repeat trial (as written by write_store)."""
    return glue_scores
