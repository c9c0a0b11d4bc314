"""A trial's cost in the store, checked against the trial's own files: its checkpoint's
weights (the parameter count) and its run log (the tokens it trained on)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from sweep.store import read_step_metrics, read_trials
from trainers.config import DataConfig
from trainers.data import eval_windows, prepare_corpus, split_tokens

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trials(tiny_study) -> pd.DataFrame:
    return read_trials(tiny_study.url, tiny_study.config.name).set_index("trial_id")


def _weights(checkpoint: str) -> int:
    """Parameters in a checkpoint's safetensors (the embeddings are untied: no duplicates)."""
    tensors = load_file(str(Path(checkpoint) / "model.safetensors"))
    return sum(int(np.prod(t.shape)) for t in tensors.values())


def test_flops_of_a_tiny_trial_equal_a_count_from_its_own_files(
    tiny_study, trials: pd.DataFrame
) -> None:
    steps = read_step_metrics(tiny_study.url, tiny_study.config.name)
    students = trials[(trials.stage == "students") & (trials.status == "COMPLETE")]
    teachers = trials[trials.stage == "teachers"]
    checked = 0
    for trial_id, trial in pd.concat([students, teachers.head(1)]).iterrows():
        log = json.loads((Path(trial.checkpoint_uri) / "run_info.json").read_text())
        tokens = log["history"][-1]["tokens_seen"]  # what the trial says it trained on
        n = _weights(trial.checkpoint_uri)
        n_teachers = sum(_weights(trials.loc[t, "checkpoint_uri"]) for t in trial.teacher_ids)
        recipe = json.loads((Path(trial.checkpoint_uri) / "recipe_config.json").read_text())
        data = DataConfig.model_validate(recipe["data"])
        corpus = prepare_corpus(data, splits=("dev", "test"))
        dev, test = (
            eval_windows(split_tokens(data, split, corpus.tokenizer_dir), data.seq_length).size
            for split in ("dev", "test")
        )
        evaluations = int(((steps.trial_id == trial_id) & (steps.name == "dev_loss")).sum())
        expected = 6 * n * tokens + 2 * n_teachers * tokens + 2 * n * (evaluations * dev + test)
        assert trial.tokens_trained == tokens
        assert trial.train_flops == pytest.approx(expected, rel=1e-12)
        assert (n_teachers > 0) == (trial.stage == "students")
        checked += 1
    assert checked >= 2


def test_device_seconds_are_wall_time_times_the_resources_held(
    tiny_study, trials: pd.DataFrame
) -> None:
    cpu = tiny_study.config.stages["teachers"].resources.cpu
    finished = trials[trials.status != "RUNNING"]
    assert len(finished) > 0
    wall = (finished.ended_at - finished.started_at).dt.total_seconds()
    assert np.allclose(finished.device_seconds, wall * cpu, rtol=1e-9)
    assert (finished.device_seconds > 0).all()
