"""The staged study end to end: real Ray, Optuna, store and micro models on babylm-mini."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from sweep.store import read_trials

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trials(tiny_study) -> pd.DataFrame:
    return read_trials(tiny_study.url, tiny_study.config.name)


def test_stage_alone_runs_only_that_stage(tiny_study) -> None:
    cfg = tiny_study.config.stages
    assert tiny_study.status == {"teachers": "PARTIAL", "students": "PARTIAL", "all": "COMPLETE"}
    assert tiny_study.seen["teachers"] == {"teachers": cfg["teachers"].trials}
    # --stage students on a store with finished teachers: only students are added
    assert tiny_study.seen["students"] == {
        "teachers": cfg["teachers"].trials,
        "students": cfg["students"].trials,
    }


def test_every_stage_has_its_configured_trial_count(tiny_study, trials: pd.DataFrame) -> None:
    cfg = tiny_study.config.stages
    expected = {
        "teachers": cfg["teachers"].trials,
        "students": cfg["students"].trials,
        "baselines": cfg["baselines"].top_n,
        # the best teacher, the best student and its alpha=1 control, each re-seeded
        "repeats": 3 * cfg["repeats"].seeds,
    }
    assert trials.groupby("stage").size().to_dict() == expected
    assert set(trials["status"]) <= {"COMPLETE", "PRUNED", "FAILED"}
    assert (trials.loc[trials.stage.isin(["baselines", "repeats"]), "status"] == "COMPLETE").all()
    for stage, count in expected.items():
        study = optuna.load_study(
            study_name=f"{tiny_study.config.name}/{stage}", storage=tiny_study.url
        )
        assert study.metric_names == ["dev_loss"]
        states = [t.state.name for t in study.trials]
        assert len(states) == count
        assert "RUNNING" not in states
        # the store and Optuna agree trial by trial
        store_states = trials[trials.stage == stage].set_index("number")["status"].to_dict()
        for t in study.trials:
            assert {"FAIL": "FAILED"}.get(t.state.name, t.state.name) == store_states[t.number]


def test_students_distil_from_the_ensemble(tiny_study, trials: pd.DataFrame) -> None:
    from sweep.store import read_ensemble

    ensemble = read_ensemble(tiny_study.url, tiny_study.config.name)
    assert len(ensemble) == tiny_study.config.stages["ensemble"].k
    teachers = trials[trials.stage == "teachers"].set_index("trial_id")
    chosen = set(ensemble["trial_id"])
    # the ensemble is the K best finished teachers by dev loss
    finished = teachers[teachers.status == "COMPLETE"].sort_values("objective")
    assert chosen == set(finished.index[: len(chosen)])
    for _, student in trials[trials.stage == "students"].iterrows():
        assert set(student["teacher_ids"]) == chosen


def test_baselines_are_matched_controls(trials: pd.DataFrame) -> None:
    students = trials[trials.stage == "students"].set_index("trial_id")
    baselines = trials[trials.stage == "baselines"]
    best = students[students.status == "COMPLETE"].sort_values("objective").index
    assert list(baselines.sort_values("number")["source_trial_id"]) == list(best[: len(baselines)])
    assert set(baselines["role"]) == {"baseline"}
    assert set(baselines["source_stage"]) == {"students"}
    for _, base in baselines.iterrows():
        source = students.loc[base["source_trial_id"]]
        assert base["param_alpha"] == 1.0
        assert base["ensemble_size"] == 0
        assert list(base["teacher_ids"]) == []
        assert base["seed"] == source["seed"]
        for name in ("param_lr", "param_temperature", "param_batch_size"):
            assert base[name] == source[name]


def test_repeats_reseed_the_best_configs(trials: pd.DataFrame) -> None:
    repeats = trials[trials.stage == "repeats"]
    # distinct seeds per config; every role shares them (paired by seed)
    seeds = repeats.groupby("role")["seed"].agg(frozenset).to_dict()
    assert set(seeds) == {"teacher", "student", "baseline"}
    assert len(set(seeds.values())) == 1 and len(seeds["teacher"]) == 2
    assert repeats.groupby("role")["source_stage"].agg(set).to_dict() == {
        "teacher": {"teachers"},
        "student": {"students"},
        "baseline": {"students"},
    }
    for stage, role in (("teachers", "teacher"), ("students", "student"), ("students", "baseline")):
        pool = trials[(trials.stage == stage) & (trials.status == "COMPLETE")]
        best = pool.sort_values("objective").iloc[0]
        mine = repeats[repeats.role == role]
        assert set(mine["source_trial_id"]) == {best["trial_id"]}
        assert not set(mine["seed"]) & set(pool["seed"])
        assert (mine["param_lr"] == best["param_lr"]).all()
        if role == "student":
            assert (mine["param_alpha"] == best["param_alpha"]).all()
            assert all(len(t) == 2 for t in mine["teacher_ids"])
            assert set(mine["ensemble_stage"]) == {"ensemble"}
        else:
            assert (mine["param_alpha"] == 1.0).all()
            assert all(len(t) == 0 for t in mine["teacher_ids"])


def test_finished_trials_carry_blimp_checkpoints_and_curves(tiny_study, trials) -> None:
    from sweep.store import read_evaluations, read_metrics

    done = trials[trials.status == "COMPLETE"]
    assert done["blimp_overall"].between(0, 1).all()
    assert done["checkpoint_uri"].notna().all()
    evaluations = read_evaluations(tiny_study.url, tiny_study.config.name)
    assert set(evaluations["suite"]) == {"blimp"}  # GLUE is off in this sweep: nothing extra ran
    per_trial = evaluations[evaluations.task != "overall"].groupby("trial_id").size()
    assert (per_trial.loc[done["trial_id"]] == 67).all()
    curves = read_metrics(tiny_study.url, tiny_study.config.name)
    dev = curves[curves.name == "dev_loss"].groupby("trial_id")["iteration"].max()
    assert (dev.loc[done["trial_id"]] == 2).all()


def test_curves_between_epochs_follow_the_tracking_settings(tiny_study, trials) -> None:
    """sweep.yaml's tracking.log_every / eval_every reach every trial: the store's step curves
    and each Optuna trial's intermediate values (dev loss keyed by training tokens seen)."""
    from sweep.store import read_metrics, read_step_metrics

    tracking = tiny_study.config.tracking
    assert (tracking.log_every, tracking.eval_every) == (4, 12)  # not the defaults
    steps = read_step_metrics(tiny_study.url, tiny_study.config.name)
    epochs = read_metrics(tiny_study.url, tiny_study.config.name).pivot_table(
        index=["trial_id", "iteration"], columns="name", values="value"
    )
    done = trials[trials.status == "COMPLETE"]
    train = steps[steps.name == "train_loss_step"]
    assert set(train["trial_id"]) == set(done["trial_id"])
    assert (train["step"] % 4 == 0).all()
    for _, trial in done.iterrows():
        ends = epochs.loc[trial["trial_id"]]  # (epoch) -> that epoch's metrics
        dev = steps[(steps.trial_id == trial["trial_id"]) & (steps.name == "dev_loss")]
        per_epoch = int(ends.loc[1, "step"])
        last = int(ends["step"].max())
        within = [s for s in range(12, last, 12) if s % per_epoch]
        assert dev["step"].tolist() == sorted([*within, *ends["step"].astype(int)])
        at_ends = dev.set_index("step")["value"].loc[ends["step"].astype(int).tolist()]
        assert at_ends.tolist() == pytest.approx(ends["dev_loss"].tolist())
        study = optuna.load_study(
            study_name=f"{tiny_study.config.name}/{trial['stage']}", storage=tiny_study.url
        )
        frozen = next(t for t in study.trials if t.number == trial["number"])
        curve = sorted(frozen.intermediate_values.items())
        assert [v for _, v in curve] == pytest.approx(dev["value"].tolist())
        assert {int(t) for t in ends["tokens_seen"]} <= {t for t, _ in curve}


def test_two_trials_really_overlap(trials: pd.DataFrame) -> None:
    spans = trials.dropna(subset=["started_at", "ended_at"]).sort_values("started_at")
    starts, ends = list(spans["started_at"]), list(spans["ended_at"])
    assert any(starts[i + 1] < ends[i] for i in range(len(starts) - 1))


def test_rerunning_a_finished_study_runs_nothing(tiny_study) -> None:
    from sweep.study import run_study

    result = run_study(tiny_study.config)
    assert result.skipped == ["teachers", "ensemble", "students", "baselines", "repeats"]
    assert len(read_trials(tiny_study.url, tiny_study.config.name)) == 3 + 3 + 2 + 6


def test_rerun_replaces_only_the_last_stage(tiny_study) -> None:
    """Runs last in this module: it re-runs the repeats of the shared study."""
    from sweep.errors import SweepError
    from sweep.study import run_study

    with pytest.raises(SweepError, match=r"--rerun: stage 'teachers' is followed by ensemble"):
        run_study(tiny_study.config, stage="teachers", rerun=True)
    before = read_trials(tiny_study.url, tiny_study.config.name)
    run_study(tiny_study.config, stage="repeats", rerun=True)
    after = read_trials(tiny_study.url, tiny_study.config.name)
    # six fresh trials (new Tune runs, started after the old ones ended), none kept
    old, new = (df[df.stage == "repeats"] for df in (before, after))
    assert len(new) == len(old) == 6
    assert not set(old["tune_trial_id"]) & set(new["tune_trial_id"])
    assert new["started_at"].min() > old["ended_at"].max()
    unchanged = before[before.stage != "repeats"]["trial_id"].tolist()
    assert after[after.stage != "repeats"]["trial_id"].tolist() == unchanged
    study = optuna.load_study(study_name="demo/repeats", storage=tiny_study.url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
