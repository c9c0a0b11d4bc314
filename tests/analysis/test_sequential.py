"""The anytime-valid paired test behind `seeds: auto` (analysis.sequential)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from analysis.calibration import Scenario, calibrate
from analysis.sequential import (
    PRIOR_SCALE,
    anytime_p,
    boundary_t,
    confidence_sequence,
    e_values,
)
from analysis.verdict import decide


def _bayes_factor_by_integration(x: np.ndarray, g: float) -> float:
    """BF10 from its definition: delta = mean/sd ~ N(0, g) under H1, prior 1/sd on sd.

    Integrated on a grid over (delta, log sd): the 1/sd prior is flat in log sd.
    """
    log_sd = np.linspace(np.log(0.02), np.log(20), 401)
    delta = np.linspace(-10, 10, 801)
    sd = np.exp(log_sd)[:, None, None]
    loglik = sps.norm.logpdf(x[None, None, :], delta[None, :, None] * sd, sd).sum(-1)
    h1 = np.exp(loglik) * sps.norm.pdf(delta, 0, np.sqrt(g))[None, :]
    h1_total = integrate.trapezoid(integrate.trapezoid(h1, delta, axis=1), log_sd)
    h0 = np.exp(sps.norm.logpdf(x[None, :], 0, np.exp(log_sd)[:, None]).sum(-1))
    return float(h1_total / integrate.trapezoid(h0, log_sd))


def test_e_value_is_the_bayes_factor_it_claims_to_be() -> None:
    x = np.array([0.9, 1.7, -0.2, 1.1, 0.6])
    closed = e_values(x)[-1]
    assert closed == pytest.approx(_bayes_factor_by_integration(x, PRIOR_SCALE), rel=1e-3)
    assert e_values(x)[0] == 1.0  # one pair says nothing scale-free


def test_boundary_is_where_the_e_value_reaches_one_over_alpha() -> None:
    for n in (5, 8, 13):
        t = boundary_t(n, 0.05)
        # a sample of n pairs whose t-statistic is exactly t
        z = np.random.default_rng(n).normal(size=n)
        z = (z - z.mean()) / z.std(ddof=1)
        x = z + t / np.sqrt(n)
        assert sps.ttest_1samp(x, 0).statistic == pytest.approx(t)
        assert e_values(x)[-1] == pytest.approx(20.0, rel=1e-6)
    # three pairs can never reach 20: the e-value is at most (1 + 3g)^(2/2) = 7
    assert boundary_t(3, 0.05) == float("inf")


def test_type_one_error_holds_across_every_look_where_the_t_test_does_not() -> None:
    """20 pairs, a look after every pair from the 3rd on: the anytime p stays valid."""
    sweeps, n = 4000, 20
    null = np.random.default_rng(7).normal(0.0, 1.0, (sweeps, n)) * 3.0
    ever = np.zeros(sweeps, bool)
    t_ever = np.zeros(sweeps, bool)
    for look in range(3, n + 1):
        ever |= anytime_p(null[:, :look]) <= 0.05
        t_ever |= sps.ttest_1samp(null[:, :look], 0, axis=1).pvalue <= 0.05
    slack = 2.33 * np.sqrt(0.05 * 0.95 / sweeps)
    assert ever.mean() <= 0.05 + slack, ever.mean()
    assert t_ever.mean() > 0.15  # optional stopping on a fixed-n test: the reason for all this


def test_a_clear_effect_is_found_and_the_anytime_p_never_rises() -> None:
    x = np.random.default_rng(1).normal(1.5, 1.0, (500, 12))
    p = np.stack([anytime_p(x[:, :k]) for k in range(2, 13)], axis=1)
    assert np.all(np.diff(p, axis=1) <= 1e-12)
    assert np.mean(p[:, -1] <= 0.05) > 0.7


def test_the_confidence_sequence_excludes_zero_exactly_when_the_test_decides() -> None:
    rng = np.random.default_rng(11)
    for _ in range(300):
        x = rng.normal(rng.uniform(-1.5, 1.5), 1.0, int(rng.integers(4, 12)))
        cs = confidence_sequence(x)
        decided = anytime_p(x) <= 0.05
        if cs is None:
            assert not decided
        else:
            assert (not cs[0] <= 0.0 <= cs[1]) == decided, (x, cs)


def test_the_confidence_sequence_covers_at_the_look_where_the_rounds_stop() -> None:
    """Stop at the first look (4..15 pairs) whose anytime p <= 0.05: the interval read there
    still covers the true mean 95% of the time (a t-interval read there would not)."""
    truth, sweeps = 0.6, 1000
    x = np.random.default_rng(12).normal(truth, 1.0, (sweeps, 15))
    running_p = 1 / np.maximum.accumulate(e_values(x), axis=1)  # anytime p after each pair
    crossed = running_p[:, 3:] <= 0.05  # looks at 4..15 pairs
    stops = np.where(crossed.any(axis=1), 4 + crossed.argmax(axis=1), 15)
    covered = t_covered = 0
    for row, stop in zip(x, stops, strict=True):
        cs = confidence_sequence(row[:stop])
        covered += cs is None or cs[0] <= truth <= cs[1]
        t_low, t_high = sps.t.interval(0.95, stop - 1, row[:stop].mean(), sps.sem(row[:stop]))
        t_covered += t_low <= truth <= t_high
    assert covered / sweeps >= 0.95 - 2.33 * np.sqrt(0.05 * 0.95 / sweeps)
    assert covered > t_covered


def test_decide_judges_sequential_tests_by_the_anytime_p() -> None:
    # three tight pairs: significant for a fixed design, but three pairs of a look-until-decided
    # design cannot carry an e-value of 20 (at most 7)
    diffs = np.array([[0.021, 0.019, 0.0205]])
    fixed = decide(diffs)
    seq = decide(diffs, sequential=[True])
    assert fixed.code[0] == 1 and fixed.p is not None and fixed.p[0] < 0.01
    assert seq.code[0] == 0 and seq.p is not None and seq.p[0] > 0.05
    more = np.array([[0.021, 0.019, 0.02, 0.024, 0.018, 0.022, 0.02]])
    assert decide(more, sequential=[True]).code[0] == 1


def test_sequential_calibration_at_reduced_size() -> None:
    """The closing note's sequential rows, small: the null holds 5% + slack, an effect is found."""
    nulls = [
        Scenario("auto null 8v8 max 10", 8, 8, 10, 0.01, sequential=True),
        Scenario("auto null ASHA 16v32 max 10", 16, 32, 10, 0.01, asha=True, sequential=True),
    ]
    outcomes = calibrate(nulls, 250, seed=5, n_permutations=49)
    n = sum(o.sweeps for o in outcomes)
    fpr = sum(o.student_better * o.sweeps for o in outcomes) / n
    assert fpr <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / n), fpr
    planted = Scenario("auto +4 pp max 10", 16, 16, 10, 0.01, effect=0.04, sequential=True)
    (found,) = calibrate([planted], 200, seed=6, n_permutations=49)
    assert found.student_better > 0.6
    assert 4 <= found.mean_seeds < 10  # stops before max_seeds when decided
