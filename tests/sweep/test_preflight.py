"""`sweep validate` warns where a valid file cannot run here, and sizes the study (issue 27, 8)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweep.cli import app

REPO = Path(__file__).resolve().parents[2]


def _validate(*args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SWEEP_STORAGE_URL",)}
    result = CliRunner().invoke(app, ["validate", *args], env=env)
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None or Path("/shared").exists(),
    reason="this machine has a GPU or a /shared: the paper-scale file would run here",
)
def test_the_paper_scale_example_validates_with_a_warning_for_each_thing_it_lacks_here() -> None:
    code, out = _validate(str(REPO / "examples" / "babyllama2-345m.yaml"))
    assert code == 0, out
    assert "warning: training.device / resources.gpu: the file asks for a GPU" in out
    assert "warning: output_dir: /shared/runs is under /shared, which does not exist here" in out
    assert "warning: data.cache_dir: /shared/cache is under /shared" in out
    assert "warning: storage: none given, so a SQLite file inside examples/" in out
    # its corpus is not capped: the compute is given a token, the size in epochs
    assert "81 trials, 648 epochs of the whole corpus" in out
    assert "345.36M-parameter model" in out


def test_the_default_study_validates_without_warnings_and_with_its_size(tmp_path: Path) -> None:
    code, out = _validate(str(REPO / "sweep.yaml"), "--storage", f"sqlite:///{tmp_path}/x.db")
    assert code == 0, out
    assert "warning:" not in out
    for stage, trials in [("teachers", 4), ("students_k1", 4), ("students_k2", 4),
                          ("baselines", 2), ("repeats", 10), ("reference", 2)]:  # fmt: skip
        assert f"{stage} {stage.split('_')[0]} {trials} trials x" in out, stage
    assert "# total: 26 trials, 2.04M training tokens" in out


@pytest.mark.skipif(Path("/shared").exists(), reason="this machine has a /shared")
def test_this_machines_cache_and_output_dirs_override_the_cluster_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 345M example names /shared/cache and /shared/runs; $SWEEP_CACHE_DIR and
    $SWEEP_OUTPUT_DIR (what validate's warnings tell a user to set) take their place, and
    --output-dir still wins (issue 27.9)."""
    from sweep.config import load_sweep_config
    from sweep.preflight import warnings

    example = REPO / "examples" / "babyllama2-345m.yaml"
    monkeypatch.delenv("SWEEP_CACHE_DIR", raising=False)
    monkeypatch.delenv("SWEEP_OUTPUT_DIR", raising=False)
    as_written = load_sweep_config(example)
    assert (as_written.data.cache_dir, as_written.output_dir) == (
        Path("/shared/cache"),
        "/shared/runs",
    )

    monkeypatch.setenv("SWEEP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SWEEP_OUTPUT_DIR", str(tmp_path / "runs"))
    here = load_sweep_config(example)
    assert here.data.cache_dir == tmp_path / "cache"
    assert here.output_dir == str(tmp_path / "runs")
    assert not [w for w in warnings(here) if "/shared" in w], warnings(here)
    assert as_written.config_hash() == here.config_hash()  # the same study: resume matches
    flag = load_sweep_config(example, output_dir=str(tmp_path / "flag"))
    assert flag.output_dir == str(tmp_path / "flag")


def test_a_search_that_samples_its_epochs_is_sized_by_its_priors_mean() -> None:
    """The reference sweep draws epochs from q_lognormal(mu 1.8, sigma 0.7, low 1): the plan
    uses that prior's mean, computed here from scipy's log-normal by rounding intervals."""
    import numpy as np
    from scipy.stats import norm

    from sweep.config import load_sweep_config
    from sweep.preflight import plan_stages

    config = load_sweep_config(REPO / "examples" / "babyllama2-sweep.yaml")
    prior = config.stages["teachers"].space["epochs"]
    k = np.arange(1, 100_000)  # round(x) = k for x in [k - 0.5, k + 0.5); low: 1 keeps k >= 1
    edges = norm.cdf((np.log(np.r_[0.5, k[1:] - 0.5, k[-1] + 0.5]) - prior.mu) / prior.sigma)
    mass = np.diff(edges)
    expected = float((k * mass).sum() / mass.sum())

    teachers = next(p for p in plan_stages(config) if p.name == "teachers")
    assert teachers.sampled_epochs
    assert teachers.epochs == pytest.approx(expected, rel=1e-3)
    assert teachers.epochs != config.stages["teachers"].epochs  # not the 8 of `epochs:`
    _, out = _validate(str(REPO / "examples" / "babyllama2-sweep.yaml"))
    assert f"64 trials x ~{expected:.3g} epochs (its prior's mean)" in out
