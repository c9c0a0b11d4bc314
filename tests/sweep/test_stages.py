"""The paper's study in declared stages: single-teacher vs two-teacher students, their
controls and repeats, a 10x-data reference, and a finished study that grows.

Real Ray, Optuna, store and micro models on babylm-mini (one epoch per trial).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest

from sweep.config import load_sweep_config
from sweep.errors import SweepError
from sweep.store import Store, read_trials
from sweep.study import run_study

pytestmark = pytest.mark.slow

SPACE = {"lr": {"dist": "loguniform", "low": 1.0e-3, "high": 1.0e-2}, "batch_size": 16}
# alpha < 1: every sampled student distils, so its teacher links are certain
STUDENT_SPACE = {**SPACE, "alpha": {"dist": "uniform", "low": 0.0, "high": 0.9}}
SEARCH = {"trials": 2, "epochs": 1, "scheduler": {"type": "none"}}
LAYOUT = {
    "teachers": {"kind": "teachers", **SEARCH, "space": SPACE},
    "ensemble_k1": {"kind": "ensemble", "teachers": "teachers", "k": 1},
    "ensemble_k2": {"kind": "ensemble", "teachers": "teachers", "k": 2},
    "students_k1": {
        "kind": "students",
        "ensemble": "ensemble_k1",
        **SEARCH,
        "space": STUDENT_SPACE,
    },
    "students_k2": {
        "kind": "students",
        "ensemble": "ensemble_k2",
        **SEARCH,
        "space": STUDENT_SPACE,
    },
    "baselines": {"kind": "baselines", "top_n": 1, "epochs": 1},
    "repeats": {"kind": "repeats", "seeds": 2, "epochs": 1},
    "reference": {"kind": "reference", "data_scale": 10, "seeds": 2, "epochs": 1},
}
EXPECTED = {
    "teachers": 2,
    "students_k1": 2,
    "students_k2": 2,
    "baselines": 2,  # one per students stage
    "repeats": 10,  # (teacher + 2 x (student + its alpha=1 control)) x 2 seeds
    "reference": 2,
}


def _layout(**changes: object) -> dict:
    layout = copy.deepcopy(LAYOUT)
    for dotted, value in changes.items():
        stage, *keys, leaf = dotted.split(".")
        node = layout[stage]
        for key in keys:
            node = node[key]
        node[leaf] = value
    return layout


@pytest.fixture(scope="module")
def study(ray_local: None, write_tiny_sweep, tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("paper-study")
    config = load_sweep_config(write_tiny_sweep(directory, stages=_layout()))
    run_study(config)
    return SimpleNamespace(config=config, url=config.storage or "", dir=directory)


@pytest.fixture(scope="module")
def trials(study) -> pd.DataFrame:
    return read_trials(study.url, study.config.name)


def test_every_stage_has_its_configured_counts_in_store_and_optuna(study, trials) -> None:
    assert trials.groupby("stage").size().to_dict() == EXPECTED
    assert set(trials["status"]) == {"COMPLETE"}
    for stage, count in EXPECTED.items():
        optuna_study = optuna.load_study(
            study_name=f"{study.config.name}/{stage}", storage=study.url
        )
        assert [t.state.name for t in optuna_study.trials] == ["COMPLETE"] * count
    assert dict(zip(trials["stage"], trials["stage_kind"], strict=True)) == {
        "teachers": "teachers",
        "students_k1": "students",
        "students_k2": "students",
        "baselines": "baselines",
        "repeats": "repeats",
        "reference": "reference",
    }
    with Store(study.url, upgrade=False) as store:
        sweep_id = store.get_sweep_id(study.config.name)
        assert sweep_id is not None
        rows = {s.name: s for s in store.stages(sweep_id)}
    assert list(rows) == list(LAYOUT)  # run in the declared order, ensembles included
    assert (rows["students_k2"].kind, rows["students_k2"].inputs) == (
        "students",
        {"ensemble": "ensemble_k2"},
    )
    assert rows["repeats"].inputs == {"sources": ["teachers", "students_k1", "students_k2"]}


def test_k1_students_distil_from_one_teacher_and_k2_from_two(trials) -> None:
    teachers = trials[trials.stage == "teachers"].sort_values("objective")
    best_two = list(teachers["trial_id"][:2])
    for stage, k in (("students_k1", 1), ("students_k2", 2)):
        students = trials[trials.stage == stage]
        assert (students["ensemble_size"] == k).all()
        assert set(students["ensemble_stage"]) == {f"ensemble_k{k}"}
        for links in students["teacher_ids"]:
            assert list(links) == best_two[:k]  # the K best teachers, best first
        assert (students["role"] == "student").all()
    assert (trials[trials.stage == "teachers"]["ensemble_size"] == 0).all()


def test_baselines_and_repeats_exist_per_students_stage(trials) -> None:
    baselines = trials[trials.stage == "baselines"]
    assert sorted(baselines["source_stage"]) == ["students_k1", "students_k2"]
    assert (baselines["role"] == "baseline").all()
    assert (baselines["param_alpha"] == 1.0).all()
    assert (baselines["ensemble_size"] == 0).all()
    repeats = trials[trials.stage == "repeats"]
    groups = repeats.groupby(["source_stage", "role"])
    assert groups.size().to_dict() == {
        ("teachers", "teacher"): 2,
        ("students_k1", "student"): 2,
        ("students_k1", "baseline"): 2,
        ("students_k2", "student"): 2,
        ("students_k2", "baseline"): 2,
    }
    seeds = {key: frozenset(rows["seed"]) for key, rows in groups}
    assert len(set(seeds.values())) == 1  # every config re-run with the same seeds
    for stage in ("students_k1", "students_k2"):
        mine = repeats[repeats.source_stage == stage]
        best = trials[trials.stage == stage].sort_values("objective").iloc[0]
        assert set(mine["source_trial_id"]) == {best["trial_id"]}
        student = mine[mine.role == "student"]
        assert (student["ensemble_size"] == int(stage[-1])).all()
        assert (student["param_alpha"] == best["param_alpha"]).all()
        assert (mine[mine.role == "baseline"]["param_alpha"] == 1.0).all()


def test_reference_trials_saw_ten_times_the_data(trials, study) -> None:
    reference = trials[trials.stage == "reference"]
    teachers = trials[trials.stage == "teachers"]
    best = teachers.sort_values("objective").iloc[0]
    assert set(reference["source_trial_id"]) == {best["trial_id"]}
    assert (reference["role"] == "teacher").all()
    assert (reference["source_stage"] == "teachers").all()
    # paired by seed with the repeats
    repeat_seeds = set(trials[trials.stage == "repeats"]["seed"])
    assert set(reference["seed"]) == repeat_seeds
    cap = study.config.data.max_train_tokens
    for rows, scale in ((teachers, 1), (reference, 10)):
        # the per-source slices round, so a cap is met to within one token per source
        assert (rows["data_tokens"] - scale * cap).abs().max() <= 10
    # and training really went through them: tokens trained in the one epoch
    ratio = reference["tokens_seen"].mean() / teachers["tokens_seen"].mean()
    assert ratio == pytest.approx(10, rel=0.02)


def test_an_unknown_stage_names_the_declared_ones(study) -> None:
    with pytest.raises(SweepError, match=r"--stage: no stage named 'students'.*students_k1"):
        run_study(study.config, stage="students")


def test_a_finished_study_grows_and_refuses_another_meaning(study, trials, write_tiny_sweep):
    """Runs last in this module: it adds trials to the shared study."""
    grown = load_sweep_config(
        write_tiny_sweep(study.dir, stages=_layout(**{"teachers.trials": 4, "reference.seeds": 3}))
    )
    result = run_study(grown)
    ran = {o.name: o.ran for o in result.outcomes}
    assert ran == {"teachers": 2, "reference": 1}
    assert sorted(result.skipped) == sorted(set(LAYOUT) - set(ran))
    after = read_trials(study.url, study.config.name)
    assert after.groupby("stage").size().to_dict() == {**EXPECTED, "teachers": 4, "reference": 3}
    kept = after[after.trial_id.isin(trials.trial_id)]
    pd.testing.assert_frame_equal(
        kept[["trial_id", "stage", "seed", "objective"]].reset_index(drop=True),
        trials[["trial_id", "stage", "seed", "objective"]].reset_index(drop=True),
    )
    teachers = optuna.load_study(study_name=f"{study.config.name}/teachers", storage=study.url)
    assert [t.state.name for t in teachers.trials] == ["COMPLETE"] * 4
    new_reference = after[(after.stage == "reference") & ~after.trial_id.isin(trials.trial_id)]
    old_reference = trials[trials.stage == "reference"]
    # the new seed re-runs the config the first two did, even if a new teacher is better now
    assert set(new_reference["source_trial_id"]) == set(old_reference["source_trial_id"])
    assert set(new_reference["seed"]) == {max(old_reference["seed"]) + 1}
    with Store(study.url, upgrade=False) as store:
        stored = store.get_sweep(study.config.name)
    assert stored is not None and stored.config["stages"]["teachers"]["trials"] == 4

    lr = {"dist": "loguniform", "low": 1.0e-4, "high": 1.0e-2}
    other = load_sweep_config(
        write_tiny_sweep(study.dir, stages=_layout(**{"teachers.space.lr": lr}))
    )
    with pytest.raises(SweepError, match="was run with another config"):
        run_study(other)
    assert len(read_trials(study.url, study.config.name)) == len(after)
