"""The consistency verdict (analysis.consistency): its statistics against scipy, its
calibration, and its word on synthetic sweeps with and without a planted spread difference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.calibration import (
    SpreadScenario,
    calibrate_spread,
    default_spread_scenarios,
    spread_frames,
)
from analysis.consistency import MIN_CONFIGS, consistency_verdicts, spread_evidence


def test_spread_statistics_and_test_equal_scipy() -> None:
    rng = np.random.default_rng(5)
    for n_a, n_b in ((5, 9), (12, 7), (30, 30)):
        a = rng.gamma(2.0, 1.0, n_a)  # skewed, unequal pools
        b = 3 * rng.gamma(2.0, 1.0, n_b) + 10
        padded_a = np.full(30, np.nan)
        padded_a[:n_a] = a
        ev = spread_evidence(padded_a, b)
        assert ev.mad_a == pytest.approx(stats.median_abs_deviation(a))
        assert ev.mad_b == pytest.approx(stats.median_abs_deviation(b))
        assert ev.iqr_a == pytest.approx(stats.iqr(a))
        assert ev.iqr_b == pytest.approx(stats.iqr(b))
        levene = stats.levene(a, b, center="median")  # Brown-Forsythe
        assert ev.statistic == pytest.approx(levene.statistic)
        assert ev.p == pytest.approx(levene.pvalue)
        assert (int(ev.n_a), int(ev.n_b)) == (n_a, n_b)


def test_calibration_false_positives_under_the_null_and_power_when_halved() -> None:
    scenarios = default_spread_scenarios()
    null = [s for s in scenarios if s.ratio == 1.0]
    outcomes = calibrate_spread(null, 200, seed=3)
    n = 200 * len(null)
    fpr = sum(o.more_consistent * o.sweeps for o in outcomes) / n
    assert fpr <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / n), fpr  # one-sided 99% binomial slack
    for o in outcomes:  # no scenario on its own is far off either
        assert o.more_consistent + o.less_consistent <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / 200)
    (power_32,) = calibrate_spread([SpreadScenario("halved 32v32", 32, 32, 0.5)], 200, seed=4)
    (power_8,) = calibrate_spread([SpreadScenario("halved 8v8", 8, 8, 0.5)], 200, seed=4)
    assert power_32.more_consistent >= 0.75
    assert power_8.more_consistent < power_32.more_consistent


def test_planted_halved_spread_is_more_consistent_and_the_null_inconclusive() -> None:
    planted = spread_frames(SpreadScenario("halved", 48, 48, ratio=0.5), seed=1)
    (verdict,) = consistency_verdicts(planted)  # type: ignore[arg-type]
    assert verdict.comparison == "students_k2 vs teachers"
    assert verdict.verdict == "more consistent", verdict.line
    assert {m.metric for m in verdict.metrics} == {"blimp_overall", "test_loss"}
    for m in verdict.metrics:
        assert m.mad_student is not None and m.mad_other is not None
        assert m.mad_student < m.mad_other
        assert "held-out" in m.basis
    assert "MORE CONSISTENT" in verdict.line

    for seed in range(3):
        null = spread_frames(SpreadScenario("null", 48, 48), seed=seed)
        (verdict,) = consistency_verdicts(null)  # type: ignore[arg-type]
        assert verdict.verdict == "inconclusive", verdict.line
        assert all(m.reason and "Brown-Forsythe p" in m.reason for m in verdict.metrics)


def test_a_pruned_search_is_read_on_every_trial_at_the_epoch_all_reached() -> None:
    frames = spread_frames(SpreadScenario("halved, ASHA", 48, 48, ratio=0.5, asha=True), seed=2)
    (verdict,) = consistency_verdicts(frames)  # type: ignore[arg-type]
    (spread,) = verdict.metrics  # one dev-loss comparison stands for both metrics
    assert spread.metric == "dev_loss" and "epoch 1" in spread.basis
    assert (spread.n_student, spread.n_other) == (48, 48)  # pruned configs count too
    assert verdict.verdict == "more consistent", verdict.line


def test_small_pools_are_inconclusive_and_say_why() -> None:
    frames = spread_frames(SpreadScenario("tiny", MIN_CONFIGS - 1, 8, ratio=0.1), seed=0)
    (verdict,) = consistency_verdicts(frames)  # type: ignore[arg-type]
    assert verdict.verdict == "inconclusive"
    assert all(f"{MIN_CONFIGS}+ per search" in (m.reason or "") for m in verdict.metrics)


def test_configs_that_trained_other_epochs_are_left_out() -> None:
    frames = spread_frames(SpreadScenario("null", 12, 12), seed=4)
    t = frames.trials  # type: ignore[attr-defined]
    longer = t.index[(t["stage"] == "students_k2")][:5]
    t.loc[longer, "epochs_trained"] = 3.0  # a searched `epochs` gave five students 3 epochs
    (verdict,) = consistency_verdicts(frames)  # type: ignore[arg-type]
    for m in verdict.metrics:
        assert (m.n_student, m.n_other) == (7, 12)
        assert "trained 2 epoch(s)" in m.basis
