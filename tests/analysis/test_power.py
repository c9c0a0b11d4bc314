"""What would decide a verdict: the detectable effect and the seeds needed (analysis.power)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from analysis.power import detectable_effect, paired_power, seeds_needed, target_effects


def test_detectable_effect_is_found_80_percent_of_the_time() -> None:
    """Monte Carlo of the paired t at the detectable effect: 80% power, not a normal guess."""
    sd, n, alpha = 0.012, 5, 0.05 / 4
    mde = detectable_effect(sd, n, alpha)
    assert mde is not None and paired_power(mde, sd, n, alpha) == pytest.approx(0.8, abs=1e-6)
    rng = np.random.default_rng(0)
    d = rng.normal(mde, sd, (20000, n))
    p = stats.ttest_1samp(d, 0.0, axis=1).pvalue
    assert np.mean(p < alpha) == pytest.approx(0.8, abs=0.015)


def test_seeds_needed_is_the_fewest_that_reach_80_percent() -> None:
    n = seeds_needed(0.01, 0.01, 0.05)
    assert n is not None
    assert paired_power(0.01, 0.01, n, 0.05) >= 0.8 > paired_power(0.01, 0.01, n - 1, 0.05)
    assert seeds_needed(0.01, 0.0001, 0.05) is None  # beyond MAX_SEEDS: says so
    assert detectable_effect(0.01, 1, 0.05) is None  # one pair has no variance


def test_target_effect_comes_from_the_stored_config() -> None:
    assert target_effects({}) == {"blimp_overall": 0.01, "test_loss": 0.02, "dev_loss": 0.02}
    got = target_effects({"report": {"target_effect": {"blimp_pp": 2.0, "loss": 0.05}}})
    assert got["blimp_overall"] == pytest.approx(0.02) and got["test_loss"] == 0.05


def test_sweep_status_says_what_would_decide_each_verdict(tmp_path: Path) -> None:
    from rich.console import Console

    from sweep.store import render_status
    from tests.analysis.verdict_stores import Plan, write_study

    url = f"sqlite:///{tmp_path / 'status.db'}"
    write_study(url, Plan(name="decide", reference_blimp=0.605))
    console = Console(width=400, record=True)
    console.print(render_status(url, "decide"))
    text = console.export_text()
    assert "verdicts (what would decide them):" in text
    line = next(x for x in text.splitlines() if x.strip().startswith("students vs teachers:"))
    assert "(5 seed pairs)" in line
    assert (
        "detectable now:" in line and "1.00 pp needs" in line and "0.0200 nats/token needs" in line
    )
