"""analysis.stats against definitions computed independently (brute force, or scipy directly)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from analysis import stats


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    x = np.array([10.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -50.0])  # n=8: drop 2 on each side
    assert stats.interquartile_mean(x) == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))


def test_iqm_estimate_interval_brackets_the_point_and_is_reproducible() -> None:
    x = np.random.default_rng(3).normal(0.6, 0.02, 12)
    a, b = stats.iqm_estimate(x), stats.iqm_estimate(x)
    assert a == b  # fixed bootstrap seed: the same store gives the same report
    assert a.low is not None and a.high is not None
    assert a.low <= a.value <= a.high
    assert a.high - a.low < 0.05


def test_iqm_estimate_says_why_there_is_no_interval() -> None:
    est = stats.iqm_estimate([0.6, 0.7])
    assert est.value == pytest.approx(0.65)
    assert est.low is None and est.high is None
    assert est.note is not None and "3+" in est.note
    assert stats.iqm_estimate([float("nan")]).value is None


def test_expected_best_equals_brute_force_over_all_draws() -> None:
    x = np.array([0.3, 0.9, 0.5, 0.5, 0.1])
    for k in (1, 2, 3):
        draws = itertools.product(x, repeat=k)  # every ordered draw with replacement
        brute_max = np.mean([max(d) for d in draws])
        brute_min = np.mean([min(d) for d in itertools.product(x, repeat=k)])
        assert stats.expected_best(x, [k], higher=True)[0] == pytest.approx(brute_max)
        assert stats.expected_best(x, [k], higher=False)[0] == pytest.approx(brute_min)


def test_expected_best_curve_rises_and_its_band_contains_it() -> None:
    x = np.random.default_rng(0).uniform(0.5, 0.7, 10)
    curve = stats.expected_best_curve(x, higher=True)
    assert curve.ks == list(range(1, 11))
    assert curve.mean[0] == pytest.approx(x.mean())
    assert np.all(np.diff(curve.mean) >= 0)
    assert curve.mean[-1] <= x.max()
    assert curve.low is not None and curve.high is not None
    assert all(
        lo <= m + 1e-12 and m <= hi + 1e-12
        for lo, m, hi in zip(curve.low, curve.mean, curve.high, strict=True)
    )
    loss = stats.expected_best_curve(x, higher=False)
    assert np.all(np.diff(loss.mean) <= 0)
    assert loss.low is not None and loss.high is not None
    assert all(lo <= hi for lo, hi in zip(loss.low, loss.high, strict=True))


def test_expected_best_curve_with_two_trials_has_no_band_and_says_so() -> None:
    curve = stats.expected_best_curve([0.6, 0.62], higher=True)
    assert curve.low is None and curve.note is not None
    assert stats.expected_best_curve([], higher=True).note == "no completed trials"


def test_probability_of_improvement_matches_mann_whitney_u() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.62, 0.01, 7), np.round(rng.normal(0.60, 0.01, 5), 2)
    est = stats.probability_of_improvement(a, b, higher=True)
    u = sps.mannwhitneyu(a, b).statistic
    assert est.value == pytest.approx(u / (a.size * b.size))
    pairs = [(x > y) + 0.5 * (x == y) for x in a for y in b]
    assert est.value == pytest.approx(np.mean(pairs))
    assert est.low is not None and est.high is not None and est.low <= est.value <= est.high
    # lower is better: a lower-loss student beats its teacher
    assert stats.probability_of_improvement([1.0, 1.1], [2.0, 2.1], higher=False).value == 1.0


def test_two_sample_tests_match_scipy_and_effect_sizes() -> None:
    a, b = np.array([0.65, 0.66, 0.64, 0.67]), np.array([0.60, 0.61, 0.62])
    welch, mw = stats.two_sample_tests(a, b, metric="blimp_overall", comparison="x")
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert welch.p_value == pytest.approx(ref.pvalue)
    assert welch.statistic == pytest.approx(ref.statistic)
    pooled = np.sqrt((3 * a.var(ddof=1) + 2 * b.var(ddof=1)) / 5)
    g = (a.mean() - b.mean()) / pooled * (1 - 3 / (4 * 7 - 9))
    assert welch.effect == pytest.approx(g)
    assert mw.p_value == pytest.approx(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    assert mw.effect == 1.0
    assert welch.difference == pytest.approx(a.mean() - b.mean())


def test_tests_on_one_seed_are_not_run_and_say_why() -> None:
    for t in stats.two_sample_tests([0.6], [0.5, 0.55], metric="m", comparison="c"):
        assert t.p_value is None and t.note is not None and "2+" in t.note
    for t in stats.paired_tests([0.6], [0.5], metric="m", comparison="c"):
        assert t.p_value is None and t.note is not None


def test_paired_tests_match_scipy() -> None:
    a = np.array([0.64, 0.66, 0.61, 0.70, 0.63])
    b = np.array([0.62, 0.65, 0.61, 0.66, 0.60])
    t, w = stats.paired_tests(a, b, metric="m", comparison="c")
    assert t.p_value == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert w.p_value == pytest.approx(sps.wilcoxon(a, b).pvalue)
    d = a - b
    assert t.effect == pytest.approx(d.mean() / d.std(ddof=1))


def test_holm_matches_its_definition() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max -> 0.06
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_apply_holm_skips_tests_that_did_not_run() -> None:
    ran = stats.two_sample_tests([1.0, 2.0, 3.0], [4.0, 5.0, 6.5], metric="m", comparison="c")
    skipped = stats.two_sample_tests([1.0], [2.0], metric="m", comparison="c")
    adjusted = stats.apply_holm(ran + skipped)
    ps = [t.p_value for t in ran]
    assert [t.p_holm for t in adjusted[:2]] == pytest.approx(stats.holm(ps))  # type: ignore[arg-type]
    assert all(t.p_holm is None for t in adjusted[2:])


def test_benjamini_hochberg_matches_its_definition() -> None:
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205])
    m = p.size
    ranked = p * m / np.arange(1, m + 1)
    expected = np.minimum.accumulate(ranked[::-1])[::-1]
    assert stats.benjamini_hochberg(p.tolist()) == pytest.approx(expected.tolist())


def test_fraction_beating_with_wilson_interval() -> None:
    wins, n, est = stats.fraction_beating([0.7, 0.5, 0.8, 0.6], 0.65, higher=True)
    assert (wins, n) == (2, 4)
    assert est.value == 0.5
    z = sps.norm.ppf(0.975)
    centre = (0.5 + z**2 / 8) / (1 + z**2 / 4)
    half = z / (1 + z**2 / 4) * np.sqrt(0.25 / 4 + z**2 / 64)
    assert est.low == pytest.approx(centre - half) and est.high == pytest.approx(centre + half)
    assert stats.fraction_beating([3.0, 5.0], 4.0, higher=False)[0] == 1


def test_proportion_test_is_fisher_exact_on_counts() -> None:
    p = stats.proportion_test(700, 1000, 600, 1000)
    assert p == pytest.approx(sps.fisher_exact([[700, 300], [600, 400]]).pvalue)
    assert stats.proportion_test(600, 1000, 600, 1000) == pytest.approx(1.0)


def test_verdict_arithmetic_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, (4, 6)), rng.normal(0.3, 1, (4, 6))
    ev = stats.paired_evidence(a - b)
    for i in range(4):
        ref = sps.ttest_rel(a[i], b[i])
        ci = ref.confidence_interval()
        assert ev.p[i] == pytest.approx(ref.pvalue)
        assert (ev.low[i], ev.high[i]) == pytest.approx((ci.low, ci.high))
        wins = int(np.sum(a[i] > b[i]))
        exact = sps.binomtest(wins, 6).proportion_ci(method="exact")
        assert (ev.p_win_low[i], ev.p_win_high[i]) == pytest.approx((exact.low, exact.high))
    p = rng.uniform(0, 0.2, (3, 5))
    p[0, 2] = np.nan  # outside the family
    rows = stats.holm_rows(p)
    assert np.isnan(rows[0, 2])
    assert rows[0, [0, 1, 3, 4]] == pytest.approx(stats.holm(p[0, [0, 1, 3, 4]].tolist()))
    assert rows[1] == pytest.approx(stats.holm(p[1].tolist()))
    # the examples: Mann-Whitney on 2 vs 2 seeds, Wilcoxon on 4 pairs
    assert stats.min_attainable_p("Mann-Whitney U", 2, 2) == pytest.approx(1 / 3)
    assert stats.min_attainable_p("Wilcoxon signed-rank", 4) == pytest.approx(0.125)
    exact_w = sps.wilcoxon([1.0, 2.0, 3.0, 4.0], method="exact").pvalue
    assert stats.min_attainable_p("Wilcoxon signed-rank", 4) == pytest.approx(exact_w)


def test_matched_budget_is_expected_best_at_equal_k() -> None:
    import itertools

    a, b = np.array([0.61, 0.64, 0.60, 0.66, 0.62]), np.array([0.60, 0.63, 0.59])
    diff, p, k = stats.matched_budget_test(a, b, higher=True, n_permutations=500)
    assert k == 3
    brute_a = np.mean([max(d) for d in itertools.product(a, repeat=3)])
    brute_b = np.mean([max(d) for d in itertools.product(b, repeat=3)])
    assert float(diff) == pytest.approx(brute_a - brute_b)
    assert 0 < float(p) <= 1
    loss, _, _ = stats.matched_budget_test(-a, -b, higher=False, n_permutations=10)
    assert float(loss) == pytest.approx(-(brute_a - brute_b))


def test_identical_paired_differences_are_not_tested() -> None:
    # BLiMP on a few hundred pairs is discrete: two seeds can differ by exactly the same amount
    d = np.array([0.6123 - 0.6235, 0.5011 - 0.5123])
    ev = stats.paired_evidence(d)
    assert np.isnan(ev.p) and np.isnan(ev.low) and ev.mean == pytest.approx(-0.0112)
