"""The verdict procedure under the null and under a planted effect (analysis.calibration)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.calibration import Scenario, calibrate, synthetic_frames
from analysis.report import render_report
from analysis.verdict import MIN_PAIRS, decide, verdicts

REPO = Path(__file__).resolve().parents[2]
NULLS = [
    Scenario("equal 8v8, 3 seeds", 8, 8, 3, 0.01),
    Scenario("equal 8v8, 5 seeds, low noise", 8, 8, 5, 0.005),
    Scenario("unequal 16v32, 5 seeds", 16, 32, 5, 0.01),
    Scenario("ASHA-pruned students, 5 seeds", 8, 8, 5, 0.01, asha=True),
]
SWEEPS = 150  # per scenario: 600 null sweeps in all


def test_false_positive_rate_and_coverage_under_the_null() -> None:
    outcomes = calibrate(NULLS, SWEEPS, seed=1, n_permutations=99)
    n = SWEEPS * len(NULLS)
    assert n >= 500
    fpr = sum(o.student_better * o.sweeps for o in outcomes) / n
    slack = 2.33 * np.sqrt(0.05 * 0.95 / n)  # one-sided 99% binomial slack
    assert fpr <= 0.05 + slack, fpr
    # pooled over the 600 sweeps (one scenario's 150 alone would be too noisy a measure)
    coverage = sum(o.coverage_difference * o.sweeps for o in outcomes) / n
    coverage_p = sum(o.coverage_p_better * o.sweeps for o in outcomes) / n
    assert coverage >= 0.93, [(o.scenario.name, o.coverage_difference) for o in outcomes]
    assert coverage_p >= 0.93, [(o.scenario.name, o.coverage_p_better) for o in outcomes]


def test_seed_pairs_alone_would_not_be_calibrated() -> None:
    """Why the matched-budget agreement exists: without it, config luck reads as an effect."""
    from analysis.calibration import simulate

    sim = simulate(NULLS[1], 400, np.random.default_rng(2), n_permutations=99)
    alone = decide(sim.diffs)
    guarded = decide(sim.diffs, guard_p=sim.guard_p, guard_favours=sim.guard_favours)
    assert np.mean(np.any(alone.code == 1, axis=1)) > 0.1
    assert np.mean(np.any(guarded.code == 1, axis=1)) <= 0.05


def test_planted_effect_is_found_at_five_seeds_not_at_two() -> None:
    big = synthetic_frames(Scenario("planted", 8, 8, 5, 0.005, effect=0.05), seed=3)
    first = verdicts(big)[0]  # type: ignore[arg-type]
    assert first.kind == "teachers"
    assert first.verdict == "better", first.line
    blimp = next(v for v in first.metrics if v.metric == "blimp_overall")
    assert blimp.difference is not None and blimp.low is not None and blimp.low > 0
    two = synthetic_frames(Scenario("planted", 8, 8, 2, 0.005, effect=0.05), seed=3)
    first = verdicts(two)[0]  # type: ignore[arg-type]
    assert first.verdict == "inconclusive"
    assert MIN_PAIRS > 2
    assert "smallest p a Wilcoxon or sign-flip test can reach at 2 pairs is 0.50" in first.line
    # the same verdict opens the rendered report
    page = render_report(big)  # type: ignore[arg-type]
    decided = verdicts(big)[0]  # type: ignore[arg-type]
    assert decided.headline.startswith("better on ")  # the word names the metric(s)
    row = page[page.index("data-comparison='students_k2 vs teachers'") :]
    row = row[: row.index("</tr>")]
    assert "ensemble student (students_k2, 2 teachers) vs teachers (teachers)" in row
    assert f"<b class='verdict-word verdict-better'>{decided.headline}</b>" in row


def test_calibration_runs_as_a_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "analysis.calibration", "--sweeps", "60", "--permutations", "49"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "FPR 'student better'" in out and "coverage P(student better)" in out
    assert "planted +2 pp, 5 seeds" in out and "null sweeps: pooled false-positive rate" in out


@pytest.mark.parametrize("n", [1, 2])
def test_too_few_pairs_never_decide(n: int) -> None:
    d = decide(np.full((1, 1, n), 5.0) + np.arange(n))
    assert d.code[0, 0] == 0 and not d.in_family[0, 0]


def test_the_three_defects_of_issue_23_stay_fixed() -> None:
    """Unequal epochs under the null, a reference with the student's truth, both sides at
    chance: each within the error budget; a truly better reference is found "worse"."""
    nulls = [
        Scenario("unequal epochs", 8, 8, 5, 0.01, epochs=(1, 2)),
        Scenario("reference null", 8, 8, 5, 0.01, kind="reference"),
        Scenario("at chance", 8, 8, 5, 0.01, level=0.5, blimp_pairs=1340),
    ]
    outcomes = calibrate(nulls, SWEEPS, seed=3, n_permutations=99)
    slack = 2.33 * np.sqrt(0.05 * 0.95 / SWEEPS)
    for o in outcomes:
        assert o.student_better <= 0.05 + slack, (o.scenario.name, o.student_better)
        assert o.student_worse <= 0.05 + slack, (o.scenario.name, o.student_worse)
    assert (
        outcomes[0].seed_pairs_alone > 0.2
    )  # the extra epoch reads as an effect without the guard
    better_reference = Scenario("reference +3 pp", 8, 8, 5, 0.01, kind="reference", effect=-0.03)
    (found,) = calibrate([better_reference], SWEEPS, seed=4, n_permutations=99)
    assert found.student_worse >= 0.8, found.student_worse


@pytest.mark.parametrize("seeds, effect", [(5, 0.02), (3, 0.02), (5, 0.0)])
def test_power_limits_match_a_monte_carlo_of_the_model(seeds: int, effect: float) -> None:
    """The closed-form ceilings of the two legs equal what the simulated sweeps give: the
    paired t on each sweep's BLiMP seed pairs, and a z-test of the two pools' mean test loss."""
    from scipy import stats

    from analysis.calibration import LOSS_PER_BLIMP, power_limits, simulate

    sc = Scenario("limits", 8, 8, seeds, 0.01, effect=effect)
    limits = power_limits(sc)
    sim = simulate(sc, 6000, np.random.default_rng(5), n_permutations=9)
    seed_p = stats.ttest_1samp(sim.diffs[:, 0], 0.0, axis=1).pvalue
    pools = sim.pools
    trial_sd = LOSS_PER_BLIMP * np.sqrt(0.01**2 + 0.01**2 + (0.005 / LOSS_PER_BLIMP) ** 2)
    z = (pools["t_loss"].mean(axis=1) - pools["s_loss"].mean(axis=1)) / (trial_sd * np.sqrt(2 / 8))
    assert limits.seed_pairs == pytest.approx(np.mean(seed_p < 0.05), abs=0.025)
    assert limits.pool_means == pytest.approx(np.mean(np.abs(z) > 1.96), abs=0.025)
    if effect:  # the verdict needs both legs: it finds less than the weaker
        found = calibrate([sc], 400, seed=2, n_permutations=99)[0].student_better
        assert found < min(limits.seed_pairs, limits.pool_means) + 0.05


def test_sequential_coverage_is_that_of_the_confidence_sequences() -> None:
    """A seeds:auto scenario's coverage is that of the interval its report row shows (the
    anytime-valid confidence sequence at the stopping look), recomputed here from the same
    sweeps, and at least 95%; the t-interval at that look covers less."""
    from analysis.calibration import FIRST_LOOK, sequential_decision, simulate
    from analysis.sequential import confidence_sequence

    sc = Scenario("auto null", 8, 8, 10, 0.01, sequential=True)
    out = calibrate([sc], 200, seed=4, n_permutations=49)[0]
    sim = simulate(sc, 200, np.random.default_rng(4), n_permutations=49)
    d, used = sequential_decision(
        sim.diffs, sim.guard_p, sim.guard_favours, first_look=FIRST_LOOK, eligible=sim.eligible
    )
    covered = []
    for s, n in enumerate(used):
        interval = confidence_sequence(sim.diffs[s, 0, : int(n)]) or (-np.inf, np.inf)
        covered.append(interval[0] <= sim.truth_difference[s] <= interval[1])
    assert out.coverage_difference == pytest.approx(np.mean(covered))
    assert out.coverage_difference >= 0.95
    t_low, t_high = d.evidence.low[:, 0], d.evidence.high[:, 0]
    t_covered = (t_low <= sim.truth_difference) & (sim.truth_difference <= t_high)
    assert np.mean(t_covered) < out.coverage_difference
    assert 4 <= out.mean_seeds <= 10
