"""The paper's teacher sweep (examples/babyllama2-sweep.yaml), tiny: every searched field and
each trial's own epochs reach the trainers, the store and Optuna."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
import yaml

from sweep.config import load_sweep_config
from sweep.priors import QUANTILE, prior_value
from sweep.store import Store
from sweep.study import run_study
from tests.conftest import MICRO_MODEL

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def tiny_paper_sweep(directory: Path, data_root: Path, cache_dir: Path) -> Path:
    """The example's teacher stage, its space as shipped but for the sizes a CPU can afford."""
    doc = yaml.safe_load((REPO / "examples" / "babyllama2-sweep.yaml").read_text())
    # Seed 5: TPE's two seeded start-up draws already differ in epochs (1, 3) and schedule; the
    # later draws depend on which trials finished first, so they cannot be relied on to vary.
    doc.update(name="paper-tiny", storage=None, output_dir=None, seed=5)
    doc["data"].update(
        root=str(data_root),
        vocab_size=500,
        seq_length=32,
        max_train_tokens=12_000,
        max_eval_tokens=3_000,
        blimp_pairs_per_paradigm=2,
        cache_dir=str(cache_dir),
        # the session's tokenizer (the reference's options are tested in tests/trainers)
        add_prefix_space=False,
        min_frequency=0,
    )
    doc["model"] = dict(MICRO_MODEL)
    doc["training"].update(device="cpu", compile=False, micro_batch_size=None)
    teachers = doc["stages"]["teachers"]
    teachers.update(trials=4, resources={"cpu": 1, "gpu": 0}, max_failures=0)
    # the priors' kinds as shipped, scaled to a micro model and a few steps
    teachers["space"].update(
        batch_size=16,
        epochs={"dist": "int", "low": 1, "high": 3},
        lr={"dist": "lognormal", "mu": -5.5, "sigma": 0.7},
        warmup_steps={"dist": "q_lognormal", "mu": 0.5, "sigma": 1.0, "high": 4},
    )
    doc["evaluation"]["glue"]["stages"] = []
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_paper_teacher_space_samples_every_field_and_each_trial_keeps_its_epochs(
    ray_local: None, data_root: Path, sweep_cache_dir: Path, tmp_path: Path
) -> None:
    config = load_sweep_config(tiny_paper_sweep(tmp_path, data_root, sweep_cache_dir))
    shipped = load_sweep_config(REPO / "examples" / "babyllama2-sweep.yaml").stages["teachers"]
    for name in (
        "beta1",
        "beta2",
        "eps",
        "schedule",
        "weight_decay",
        "attention_dropout",
        "grad_clip",
    ):
        assert config.stages["teachers"].space[name] == shipped.space[name]
    run_study(config, stage="teachers")

    store = Store(config.storage or "")
    sweep_id = store.get_sweep_id(config.name)
    assert sweep_id is not None
    stage = store.get_stage(sweep_id, "teachers")
    assert stage is not None
    trials = store.trials(stage.id)
    assert len(trials) == 4
    params = [t.params for t in trials]
    for name in ("epochs", "beta1", "beta2", "schedule", "attention_dropout", "eps", "lr"):
        assert len({p[name] for p in params}) > 1, f"{name} does not vary: {params}"
    assert all(isinstance(p["warmup_steps"], int) and 0 <= p["warmup_steps"] <= 4 for p in params)
    assert all(0.99 <= p["beta2"] <= 0.9999 for p in params)
    assert all(0.0 <= p["beta1"] <= 0.99 for p in params)

    # Optuna samples 1 - beta on a log scale and a log-normal prior's quantile; the store and
    # the trainers get the value itself, and so do the Optuna trial's user attributes
    study = optuna.load_study(study_name=f"{config.name}/teachers", storage=config.storage)
    by_number = {t.number: t for t in study.get_trials()}
    space = config.stages["teachers"].space
    for trial in trials:
        sampled = by_number[trial.number].params
        assert trial.params["beta2"] == pytest.approx(1 - sampled["one_minus_beta2"], abs=1e-15)
        assert trial.params["beta1"] == pytest.approx(1 - sampled["one_minus_beta1"], abs=1e-15)
        for name in ("epochs", "schedule", "attention_dropout"):
            assert trial.params[name] == sampled[name]
        for name in ("eps", "lr", "weight_decay", "grad_clip", "warmup_steps"):
            assert trial.params[name] == prior_value(space[name], sampled[QUANTILE + name])
            assert by_number[trial.number].user_attrs[name] == trial.params[name]
        # the trial's resolved config is what it trained with: its own epochs, betas, dropout
        training = (trial.config or {})["training"]
        for name in (
            "epochs",
            "beta1",
            "beta2",
            "schedule",
            "attention_dropout",
            "eps",
            "lr",
            "weight_decay",
            "grad_clip",
            "warmup_steps",
        ):
            assert training[name] == trial.params[name]
        assert training["checkpoint"] == "best"

    # each trial trains its own epochs: complete at them (never pruned for being short),
    # early-stopped only before them; its LR schedule ends at its own last step
    statuses = {}
    for trial in trials:
        curve = store.trial_metrics(trial.id)
        last, own = max(curve), trial.params["epochs"]
        statuses[trial.number] = (trial.status, last, own)
        assert last <= own
        if trial.status == "COMPLETE":
            assert last == own
            assert curve[last]["lr"] == pytest.approx(0.0, abs=1e-12)  # decayed to 0 on time
            if own > 1:
                assert curve[1]["lr"] > 0
            assert math.isfinite(curve[last]["test_loss"])
            assert trial.objective == curve[last]["checkpoint_dev_loss"]
            assert trial.objective == min(curve[e]["dev_loss"] for e in curve)
        else:
            assert trial.status == "PRUNED" and last < own, statuses
    assert any(s == "COMPLETE" and own < 3 for s, _, own in statuses.values()), statuses
