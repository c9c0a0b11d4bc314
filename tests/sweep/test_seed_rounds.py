"""seeds: auto: rounds of seeds until the verdict is decided (sweep.stages.rounds).

The statistics are read from real stores written through the Store API, as the driver reads
them after each round: a student that truly beats its alpha=1 control stops at the first look
where the anytime-valid boundary is crossed; with no effect the study runs to max_seeds and
the report says inconclusive.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from analysis.load import load_frames
from analysis.sequential import boundary_t, stage_look
from analysis.verdict import ALPHA, verdicts
from sweep.config import RepeatsStage
from sweep.stages.rounds import next_round, schedule
from sweep.store import Store, TrialStatus

T0 = datetime(2025, 1, 1, tzinfo=UTC)
AUTO = {"kind": "repeats", "sources": ["students"], "seeds": "auto", "max_seeds": 10}


def _write_pools(url: str) -> int:
    """A students stage of 3 configs (the pool the repeats re-seed); returns the best's id."""
    with Store(url) as store:
        sweep_id = store.upsert_sweep(
            "auto",
            config={"name": "auto", "stages": {"students": {"kind": "students"}, "repeats": AUTO}},
            config_hash="hash-auto",
            code_version="test",
        )
        stage = store.upsert_stage(sweep_id, "students", kind="students", objective_name="dev_loss")
        ids = []
        for number, loss in enumerate((3.10, 3.05, 3.20)):
            tid = store.upsert_trial(
                stage, number, role="student", params={"lr": 1e-3 * (number + 1)}, seed=number
            )
            store.add_metrics(tid, 1, {"dev_loss": loss, "test_loss": loss + 0.02})
            store.finish_trial(tid, TrialStatus.COMPLETE, objective=loss, ended_at=T0)
            ids.append(tid)
        store.set_stage_status(stage, "COMPLETE")
        return ids[1]


def _write_round(url: str, source: int, seeds: range, losses: np.ndarray) -> None:
    """What the repeats stage's trials would record for these seeds: a student and its
    alpha = 1 control per seed (test loss only; BLiMP not scored)."""
    with Store(url) as store:
        sweep_id = store.get_sweep_id("auto")
        assert sweep_id is not None
        stage = store.upsert_stage(
            sweep_id, "repeats", kind="repeats", inputs={"sources": ["students"]}
        )
        store.set_stage_status(stage, "RUNNING")
        for i in seeds:
            for j, role in enumerate(("student", "baseline")):
                tid = store.upsert_trial(
                    stage, 2 * i + j, role=role, params={"lr": 2e-3}, seed=10_000 + i,
                    source_trial_id=source,
                )  # fmt: skip
                loss = float(losses[i, j])
                store.add_metrics(tid, 1, {"dev_loss": loss, "test_loss": loss})
                store.finish_trial(tid, TrialStatus.COMPLETE, objective=loss, ended_at=T0)
        store.set_stage_status(stage, "COMPLETE")


def _grow(url: str, stage: RepeatsStage, losses: np.ndarray) -> list[str]:
    """The driver's loop (sweep.study._run_rounds) with the round's trials written directly."""
    source = _write_pools(url)
    held, why = 0, []
    while True:
        step = next_round(stage, held, True, lambda: _look(url))
        why.append(step.why)
        if step.seeds is None:
            return why
        _write_round(url, source, range(held, step.seeds), losses)
        held = step.seeds


def _look(url: str) -> tuple[bool, str]:
    look = stage_look(load_frames(url, "auto"), "repeats")
    return look.settled, "; ".join(look.decided + look.open)


def _losses(effect: float, seed: int) -> np.ndarray:
    """(seed, student/baseline) test losses; the student is `effect` nats/token better."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 0.02, (10, 1))  # data order shared by both runs of a seed
    own = rng.normal(0, 0.02, (10, 2))
    return 3.0 + shared + own - np.array([effect, 0.0])


def _first_crossing(diffs: np.ndarray, looks: list[int]) -> int | None:
    """The first look at which the running |t| has crossed the anytime boundary at alpha."""
    for look in looks:
        for k in range(2, look + 1):
            d = diffs[:k]
            t = abs(d.mean() / (d.std(ddof=1) / np.sqrt(k)))
            if t >= boundary_t(k, ALPHA):
                return look
    return None


def test_the_schedule_of_looks() -> None:
    stage = RepeatsStage(**{**AUTO, "max_seeds": 9, "first_look": 4, "round_seeds": 2})
    assert schedule(stage) == [4, 6, 8, 9]
    assert schedule(stage, cap=5) == [4, 5]
    assert schedule(RepeatsStage(seeds="auto", max_seeds=3, first_look=3)) == [3]


def test_a_round_cut_short_is_finished_before_anyone_looks() -> None:
    stage = RepeatsStage(**{**AUTO, "first_look": 4, "round_seeds": 2})

    def never() -> tuple[bool, str]:
        raise AssertionError("looked mid-round")

    assert next_round(stage, 0, True, never).seeds == 4
    assert next_round(stage, 3, False, never).seeds == 4  # crashed in the first round
    assert next_round(stage, 4, False, never).seeds == 4  # seeds all started, not all ended
    assert next_round(stage, 5, False, never).seeds == 6
    assert next_round(stage, 4, True, lambda: (False, "open")).seeds == 6
    assert next_round(stage, 4, True, lambda: (True, "decided")).seeds is None
    # max_seeds raised on a finished study: the last look is looked at again, and continues
    raised = RepeatsStage(**{**AUTO, "max_seeds": 14, "first_look": 4, "round_seeds": 2})
    assert next_round(stage, 10, True, lambda: (False, "open")).seeds is None
    assert next_round(raised, 10, True, lambda: (False, "open")).seeds == 12


def test_a_planted_effect_stops_at_the_round_the_boundary_says(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'planted.db'}"
    stage = RepeatsStage(**AUTO)
    losses = _losses(0.05, seed=4)
    why = _grow(url, stage, losses)
    frames = load_frames(url, "auto")
    held = int(frames.trials.loc[frames.trials["stage"] == "repeats", "seed"].nunique())
    diffs = losses[:, 1] - losses[:, 0]  # baseline minus student: + = student better
    expected = _first_crossing(diffs, schedule(stage))
    assert expected is not None and expected < stage.max_seeds, "the planted effect is too weak"
    assert held == expected, why
    assert why[-1].startswith(f"decided at {expected} seeds")
    (comparison,) = verdicts(frames)
    (loss,) = [v for v in comparison.metrics if v.metric == "test_loss"]
    assert loss.sequential and loss.verdict == "better" and loss.n_pairs == expected
    assert "anytime-valid sequential p" in comparison.line


def test_the_null_runs_to_max_seeds_and_says_inconclusive(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'null.db'}"
    stage = RepeatsStage(**AUTO)
    losses = _losses(0.0, seed=4)
    why = _grow(url, stage, losses)
    frames = load_frames(url, "auto")
    assert frames.trials.loc[frames.trials["stage"] == "repeats", "seed"].nunique() == 10
    assert why[-1].startswith("max_seeds reached at 10 seeds")
    (comparison,) = verdicts(frames)
    assert comparison.verdict == "inconclusive"
    (loss,) = [v for v in comparison.metrics if v.metric == "test_loss"]
    assert loss.sequential and loss.n_pairs == 10
    assert loss.p is not None and loss.p > ALPHA


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"seeds": "auto"}, "stages.repeats.max_seeds: required with seeds: auto"),
        ({"seeds": "auto", "max_seeds": 3}, "stages.repeats.max_seeds: 3 is below first_look (4"),
        ({"seeds": 3, "max_seeds": 6}, "stages.repeats.max_seeds: read only with seeds: auto"),
        ({"seeds": 3, "round_seeds": 2}, "stages.repeats.round_seeds: read only with seeds: auto"),
        ({"seeds": "lots"}, "stages.repeats.seeds: should be a valid integer"),
        ({"seeds": "auto", "max_seeds": 8, "first_look": 2}, "stages.repeats.first_look"),
    ],
)
def test_each_bad_field_is_named(tmp_path: Path, given: dict[str, object], problem: str) -> None:
    import yaml

    from sweep.config import load_sweep_config
    from sweep.errors import ConfigError

    repo = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((repo / "sweep.yaml").read_text())
    doc["stages"]["repeats"] = {**doc["stages"]["repeats"], **given}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_sweep_config(path)
    lines = [line for line in str(caught.value).splitlines() if "stages.repeats" in line]
    assert len(lines) == 1 and problem in lines[0], str(caught.value)


def test_seeds_auto_is_part_of_the_study_and_max_seeds_is_not(tmp_path: Path) -> None:
    import yaml

    from sweep.config import load_sweep_config

    repo = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((repo / "sweep.yaml").read_text())
    hashes = {}
    for label, given in {
        "fixed": {"seeds": 2},
        "fixed more": {"seeds": 5},
        "auto 8": {"seeds": "auto", "max_seeds": 8},
        "auto 12": {"seeds": "auto", "max_seeds": 12, "round_seeds": 2},
    }.items():
        doc["stages"]["repeats"] = {**doc["stages"]["repeats"], **given}
        doc["stages"]["repeats"].pop("max_seeds", None) if "max_seeds" not in given else None
        doc["stages"]["repeats"].pop("round_seeds", None) if "round_seeds" not in given else None
        path = tmp_path / f"{label}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        hashes[label] = load_sweep_config(path).config_hash()
    assert hashes["fixed"] == hashes["fixed more"]
    assert hashes["auto 8"] == hashes["auto 12"]  # raising max_seeds continues the study
    assert hashes["fixed"] != hashes["auto 8"]  # a fixed study does not turn sequential


# ---------------------------------------------------------------- one real study, micro models

SEARCH = {"trials": 2, "epochs": 1, "scheduler": {"type": "none"}}
SPACE = {"lr": {"dist": "loguniform", "low": 1.0e-3, "high": 1.0e-2}, "batch_size": 16}
LAYOUT = {
    "teachers": {"kind": "teachers", **SEARCH, "space": SPACE},
    "ensemble": {"kind": "ensemble", "teachers": "teachers", "k": 1},
    "students": {
        "kind": "students",
        "ensemble": "ensemble",
        **SEARCH,
        "space": {**SPACE, "alpha": {"dist": "uniform", "low": 0.0, "high": 0.9}},
    },
    "repeats": {
        "kind": "repeats",
        "sources": ["students"],
        "seeds": "auto",
        "first_look": 3,
        "max_seeds": 4,
        "epochs": 1,
    },
}


def _settled_at(frames: object, seeds: int) -> bool:
    """The look the driver took at `seeds` seeds, re-read from the finished store."""
    import dataclasses

    t = frames.trials  # type: ignore[attr-defined]
    keep = (t["stage"] != "repeats") | (t["seed"] < 10_000 + seeds)
    return stage_look(dataclasses.replace(frames, trials=t[keep]), "repeats").settled  # type: ignore[type-var]


def test_a_real_study_grows_its_seeds_in_rounds(ray_local: None, write_tiny_sweep, tmp_path):
    """Micro models: the repeats stop at a look that settled, or at max_seeds; raising
    max_seeds on the finished study looks again and runs only what that look asks for."""
    from sweep.config import load_sweep_config
    from sweep.study import run_study

    config = load_sweep_config(write_tiny_sweep(tmp_path, stages=LAYOUT))
    run_study(config)
    frames = load_frames(config.storage or "", config.name)
    repeats = frames.trials[frames.trials["stage"] == "repeats"]
    held = int(repeats["seed"].nunique())
    assert held in (3, 4) and len(repeats) == 2 * held  # student + its alpha=1 control per seed
    assert set(repeats["seed"]) == {10_000 + i for i in range(held)}
    assert _settled_at(frames, held) or held == 4
    assert held == 3 or not _settled_at(frames, 3)  # a settled first look stops the rounds
    (comparison,) = [c for c in verdicts(frames) if c.kind == "baseline"]
    assert all(v.sequential for v in comparison.metrics)

    raised = {**LAYOUT, "repeats": {**LAYOUT["repeats"], "max_seeds": 5}}
    grown = load_sweep_config(write_tiny_sweep(tmp_path, stages=raised))
    result = run_study(grown)
    after = load_frames(config.storage or "", config.name).trials
    now = int(after.loc[after["stage"] == "repeats", "seed"].nunique())
    if _settled_at(frames, held):
        assert now == held and "repeats" in result.skipped
    else:
        assert now == 5 and {o.name: o.ran for o in result.outcomes} == {"repeats": 2}
