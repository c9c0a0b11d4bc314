"""The statistics of the robustness report, on plain arrays: scipy.stats wherever it has the test.

Conventions: every comparison is "student minus other" in the metric's own units; `higher`
says whether a larger value is better (BLiMP accuracy) or worse (dev loss). Functions that
need more data than they were given return a result whose `note` says what is missing,
never NaN, so the report can print the note instead of a number.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy import stats

__all__ = [
    "CONFIDENCE",
    "MIN_FOR_CI",
    "MIN_FOR_TEST",
    "N_RESAMPLES",
    "Estimate",
    "ExpectedBest",
    "PairedEvidence",
    "TestResult",
    "apply_holm",
    "benjamini_hochberg",
    "bootstrap_ci",
    "clopper_pearson",
    "expected_best",
    "expected_best_at",
    "expected_best_curve",
    "fraction_beating",
    "hedges_g",
    "holm",
    "holm_rows",
    "interquartile_mean",
    "iqm_estimate",
    "matched_budget_test",
    "min_attainable_p",
    "paired_evidence",
    "paired_tests",
    "probability_of_improvement",
    "proportion_test",
    "two_sample_tests",
]

CONFIDENCE = 0.95
N_RESAMPLES = 2000
"""Bootstrap resamples: enough for a stable 95% percentile interval, quick on 2 cores."""
MIN_FOR_CI = 3
"""Fewest values for which a bootstrap interval means anything."""
MIN_FOR_TEST = 2
"""Fewest values per side for a two-sample or paired test."""
SEED = 0
"""Bootstrap seed: the same store always gives the same report."""

Array = npt.NDArray[np.float64]


def _values(x: Sequence[float] | npt.ArrayLike) -> Array:
    """A 1-D float array without NaNs (a trial without the metric is no observation)."""
    arr = np.asarray(x, dtype=float).ravel()
    return arr[~np.isnan(arr)]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval, or a note saying why there is no interval."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    note: str | None = None


@dataclass(frozen=True)
class TestResult:
    """One hypothesis test; `p_value` is None when the data cannot support the test."""

    name: str
    """e.g. "Welch t", "Mann-Whitney U", "paired t", "Wilcoxon signed-rank"."""
    metric: str
    comparison: str
    """e.g. "student repeats vs teacher repeats"."""
    n_a: int
    n_b: int
    statistic: float | None
    p_value: float | None
    effect_name: str
    effect: float | None
    difference: float | None
    """Mean (or mean paired) difference, student minus other, in the metric's units."""
    p_holm: float | None = None
    note: str | None = None
    min_p: float | None = None
    """Smallest two-sided p this test can return at its n: at or above 0.05, it can never reject."""

    def with_holm(self, p_holm: float | None) -> TestResult:
        return replace(self, p_holm=p_holm)


def interquartile_mean(x: npt.ArrayLike) -> float:
    """Mean of the middle 50% (rliable's IQM): robust to one diverged or lucky trial."""
    return float(stats.trim_mean(_values(x), 0.25))


def _iqm_axis(x: Array, axis: int = -1) -> Array:
    return np.asarray(stats.trim_mean(x, 0.25, axis=axis))


def bootstrap_ci(
    samples: Sequence[npt.ArrayLike],
    statistic: Callable[..., Array],
    *,
    paired: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a vectorised statistic (scipy.stats.bootstrap).

    Percentile rather than BCa: BCa fails on the ties that small sweeps produce.
    """
    data = tuple(_values(s) for s in samples)
    res = stats.bootstrap(
        data,
        statistic,
        n_resamples=N_RESAMPLES,
        vectorized=True,
        paired=paired,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(SEED),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def iqm_estimate(x: npt.ArrayLike) -> Estimate:
    """IQM with a 95% bootstrap interval when there are at least MIN_FOR_CI values."""
    v = _values(x)
    if v.size == 0:
        return Estimate(None, n=0, note="no values")
    point = interquartile_mean(v)
    if v.size < MIN_FOR_CI:
        return Estimate(point, n=v.size, note=f"n={v.size}: an interval needs {MIN_FOR_CI}+")
    low, high = bootstrap_ci([v], _iqm_axis)
    return Estimate(point, low, high, n=v.size)


def _prob_improvement_axis(a: Array, b: Array, axis: int = -1) -> Array:
    a = np.moveaxis(a, axis, -1)[..., :, None]
    b = np.moveaxis(b, axis, -1)[..., None, :]
    return np.asarray(np.mean((a > b) + 0.5 * (a == b), axis=(-2, -1)))


def probability_of_improvement(a: npt.ArrayLike, b: npt.ArrayLike, *, higher: bool) -> Estimate:
    """P(a better than b) + P(tie)/2 over all pairs (rliable), with a bootstrap interval.

    Equals the Mann-Whitney U of a divided by len(a)*len(b); 0.5 means no difference.
    """
    va, vb = _values(a), _values(b)
    if not higher:
        va, vb = -va, -vb
    if va.size == 0 or vb.size == 0:
        return Estimate(None, n=min(va.size, vb.size), note="one side has no values")
    point = float(_prob_improvement_axis(va, vb))
    n = min(va.size, vb.size)
    if n < MIN_FOR_TEST:
        return Estimate(point, n=n, note=f"{va.size} vs {vb.size} values, too few for an interval")
    if point in (0.0, 1.0):  # every resample gives the same value: a "[1.00, 1.00]" says nothing
        side = "every" if point == 1.0 else "no"
        return Estimate(
            point,
            n=n,
            note=f"{side} value of one side beats every value of the other: a bootstrap "
            "interval would be a point",
        )
    low, high = bootstrap_ci([va, vb], _prob_improvement_axis)
    return Estimate(point, low, high, n=n)


def hedges_g(a: npt.ArrayLike, b: npt.ArrayLike) -> float | None:
    """Standardised mean difference (a - b) / pooled sd, small-sample corrected."""
    va, vb = _values(a), _values(b)
    na, nb = va.size, vb.size
    if na < 2 or nb < 2:
        return None
    pooled = ((na - 1) * va.var(ddof=1) + (nb - 1) * vb.var(ddof=1)) / (na + nb - 2)
    if pooled <= 0:
        return None
    correction = 1 - 3 / (4 * (na + nb) - 9)
    return float((va.mean() - vb.mean()) / np.sqrt(pooled) * correction)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _test(
    name: str,
    effect_name: str,
    *,
    metric: str,
    comparison: str,
    n: tuple[int, int],
    statistic: float | None = None,
    p_value: float | None = None,
    effect: float | None = None,
    difference: float | None = None,
    note: str | None = None,
) -> TestResult:
    return TestResult(
        name=name,
        metric=metric,
        comparison=comparison,
        n_a=n[0],
        n_b=n[1],
        statistic=statistic,
        p_value=p_value,
        effect_name=effect_name,
        effect=effect,
        difference=difference,
        note=note,
    )


def two_sample_tests(
    a: npt.ArrayLike, b: npt.ArrayLike, *, metric: str, comparison: str, higher: bool = True
) -> list[TestResult]:
    """Welch's t (unequal variances) and Mann-Whitney U, two-sided, a minus b.

    Effect sizes: Hedges' g for Welch; for Mann-Whitney P(student better) = P(a better
    than b) + P(tie)/2 (a is the student side)
    (U / n_a n_b on the values oriented so that larger is better: for a loss, P(a < b)).
    """
    va, vb = _values(a), _values(b)
    mw_p = min_attainable_p("Mann-Whitney U", va.size, vb.size)
    if va.size < MIN_FOR_TEST or vb.size < MIN_FOR_TEST:
        note = f"not tested: {va.size} vs {vb.size} values; each side needs {MIN_FOR_TEST}+ seeds"
        return [
            _test(
                name, effect, metric=metric, comparison=comparison, n=(va.size, vb.size), note=note
            )
            for name, effect in (("Welch t", "Hedges g"), ("Mann-Whitney U", "P(student better)"))
        ]
    diff = float(va.mean() - vb.mean())
    # every result of this comparison shares these fields
    test = functools.partial(
        _test, metric=metric, comparison=comparison, n=(va.size, vb.size), difference=diff
    )
    if np.ptp(va) == 0 and np.ptp(vb) == 0:
        welch = test(
            "Welch t", "Hedges g", note="not tested: every value on each side is identical"
        )
    else:
        t = stats.ttest_ind(va, vb, equal_var=False)
        welch = test(
            "Welch t",
            "Hedges g",
            statistic=_finite(t.statistic),
            p_value=_finite(t.pvalue),
            effect=hedges_g(va, vb),
        )
    sign = 1.0 if higher else -1.0
    u = stats.mannwhitneyu(sign * va, sign * vb, alternative="two-sided")
    mw = replace(
        test(
            "Mann-Whitney U",
            "P(student better)",
            statistic=float(u.statistic),
            p_value=_finite(u.pvalue),
            effect=float(u.statistic) / (va.size * vb.size),
        ),
        min_p=mw_p,
    )
    return [replace(welch, min_p=min_attainable_p("Welch t", va.size, vb.size)), mw]


def paired_tests(
    a: npt.ArrayLike, b: npt.ArrayLike, *, metric: str, comparison: str
) -> list[TestResult]:
    """Paired t and Wilcoxon signed-rank on a[i] - b[i]; effect size d_z = mean/sd of diffs.

    Pairs where either side is missing are dropped.
    """
    pa, pb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(pa) | np.isnan(pb))
    pa, pb = pa[keep], pb[keep]
    n = int(pa.size)
    d = pa - pb
    diff = float(d.mean()) if n else None
    if n < MIN_FOR_TEST:
        note = f"not tested: {n} pair(s); a paired test needs {MIN_FOR_TEST}+"
        return [
            _test(
                name,
                "d_z",
                metric=metric,
                comparison=comparison,
                n=(n, n),
                difference=diff,
                note=note,
            )
            for name in ("paired t", "Wilcoxon signed-rank")
        ]
    sd = float(d.std(ddof=1))
    dz = diff / sd if sd > 0 and diff is not None else None
    # every result of this comparison shares these fields
    test = functools.partial(_test, metric=metric, comparison=comparison, n=(n, n), difference=diff)
    if sd == 0:
        note = "not tested: every pair differs by the same amount (no variance)"
        paired_t = test("paired t", "d_z", note=note)
    else:
        t = stats.ttest_rel(pa, pb)
        paired_t = test(
            "paired t",
            "d_z",
            statistic=_finite(t.statistic),
            p_value=_finite(t.pvalue),
            effect=dz,
        )
    if np.all(d == 0):
        wilcoxon = test(
            "Wilcoxon signed-rank", "d_z", effect=dz, note="not tested: every pair is tied"
        )
    else:
        w = stats.wilcoxon(pa, pb)
        wilcoxon = test(
            "Wilcoxon signed-rank",
            "d_z",
            statistic=float(w.statistic),
            p_value=_finite(w.pvalue),
            effect=dz,
        )
    return [
        replace(paired_t, min_p=min_attainable_p("paired t", n)),
        replace(wilcoxon, min_p=min_attainable_p("Wilcoxon signed-rank", n)),
    ]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, family-wise error control)."""
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return [float(x) for x in adjusted]


def apply_holm(tests: Sequence[TestResult]) -> list[TestResult]:
    """Holm across the tests that ran; the others keep p_holm=None."""
    ran = [i for i, t in enumerate(tests) if t.p_value is not None]
    adjusted = holm([tests[i].p_value for i in ran])  # type: ignore[misc]
    out = list(tests)
    for i, p in zip(ran, adjusted, strict=True):
        out[i] = tests[i].with_holm(p)
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg q-values (false discovery rate), scipy's false_discovery_control."""
    if len(p_values) == 0:
        return []
    q = stats.false_discovery_control(np.asarray(p_values, dtype=float), method="bh")
    return [float(x) for x in np.atleast_1d(q)]


def proportion_test(correct_a: float, n_a: float, correct_b: float, n_b: float) -> float:
    """Two-sided Fisher exact p-value for two accuracies on n_a and n_b scored pairs.

    The store keeps accuracies, not per-pair outcomes, so McNemar's paired test is out of
    reach; the unpaired test is conservative when both models score the same pairs.
    """
    table = [
        [round(correct_a), round(n_a - correct_a)],
        [round(correct_b), round(n_b - correct_b)],
    ]
    return float(stats.fisher_exact(table).pvalue)


def fraction_beating(
    values: npt.ArrayLike, threshold: float, *, higher: bool
) -> tuple[int, int, Estimate]:
    """How many values beat a threshold, as a fraction with a 95% Wilson interval."""
    v = _values(values)
    wins = int(np.sum(v > threshold) if higher else np.sum(v < threshold))
    if v.size == 0:
        return 0, 0, Estimate(None, note="no values")
    ci = stats.binomtest(wins, v.size).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return wins, v.size, Estimate(wins / v.size, float(ci.low), float(ci.high), n=v.size)


def _expected_best_axis(x: Array, ks: Array, axis: int = -1) -> Array:
    """Dodge et al. (2019) eq. 1 on each sample: E[max of k draws with replacement]."""
    x = np.sort(np.moveaxis(x, axis, -1), axis=-1)
    n = x.shape[-1]
    i = np.arange(1, n + 1)
    weights = (i / n) ** ks[:, None] - ((i - 1) / n) ** ks[:, None]  # (K, n)
    return np.asarray(np.einsum("...n,kn->k...", x, weights))


def expected_best(values: npt.ArrayLike, ks: npt.ArrayLike, *, higher: bool) -> Array:
    """Expected best score after k trials drawn from the sweep's empirical distribution."""
    v = _values(values)
    sign = 1.0 if higher else -1.0
    return sign * _expected_best_axis(sign * v, np.asarray(ks, dtype=float))


@dataclass(frozen=True)
class ExpectedBest:
    """An expected-best-score curve (k = 1..n) with a pointwise 95% bootstrap band."""

    ks: list[int]
    mean: list[float]
    low: list[float] | None
    high: list[float] | None
    n: int
    note: str | None = None


def expected_best_curve(values: npt.ArrayLike, *, higher: bool) -> ExpectedBest:
    """Dodge et al.'s expected maximum for k = 1..n, band from scipy.stats.bootstrap.

    The band is pointwise and percentile-based; near k = n it is optimistic (a bootstrap
    cannot see beyond the best value observed), which the methods footer says.
    """
    v = _values(values)
    n = v.size
    if n == 0:
        return ExpectedBest([], [], None, None, 0, note="no completed trials")
    ks = np.arange(1, n + 1, dtype=float)
    mean = expected_best(v, ks, higher=higher)
    if n < MIN_FOR_CI:
        return ExpectedBest(
            list(range(1, n + 1)),
            [float(m) for m in mean],
            None,
            None,
            n,
            note=f"{n} trial(s): a band needs {MIN_FOR_CI}+",
        )
    sign = 1.0 if higher else -1.0
    res = stats.bootstrap(
        (sign * v,),
        lambda x, axis=-1: _expected_best_axis(x, ks, axis=axis),
        n_resamples=N_RESAMPLES,
        vectorized=True,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(SEED),
    )
    a, b = sign * res.confidence_interval.low, sign * res.confidence_interval.high
    return ExpectedBest(
        list(range(1, n + 1)),
        [float(m) for m in mean],
        [float(x) for x in np.minimum(a, b)],
        [float(x) for x in np.maximum(a, b)],
        n,
    )


# ---------------------------------------------------------------- the verdict's arithmetic
# Vectorised over leading axes, so the report (one sweep) and the calibration harness
# (thousands of synthetic sweeps) run the very same code.


def min_attainable_p(test: str, n_a: int, n_b: int | None = None) -> float:
    """The smallest two-sided p-value a test can return at this n (ties aside).

    Rank and sign-flip tests have a floor set by the number of orderings: the Wilcoxon
    signed-rank and sign-flip tests 2 / 2^n on n pairs, Mann-Whitney 2 / C(n_a + n_b, n_a).
    The t-tests have none (0.0) once each side has 2 values.
    """
    if test in ("Wilcoxon signed-rank", "sign-flip"):
        return 1.0 if n_a < 1 else min(1.0, 2.0 / 2.0**n_a)
    if test == "Mann-Whitney U":
        nb = n_a if n_b is None else n_b
        return 1.0 if n_a < 1 or nb < 1 else min(1.0, 2.0 / math.comb(n_a + nb, n_a))
    if test in ("paired t", "Welch t"):
        return 0.0 if n_a >= 2 and (n_b is None or n_b >= 2) else 1.0
    raise ValueError(f"unknown test {test!r}")


def clopper_pearson(k: npt.ArrayLike, n: npt.ArrayLike) -> tuple[Array, Array]:
    """Exact 95% binomial interval for k successes in n (elementwise; never below nominal)."""
    k_, n_ = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    a = (1 - CONFIDENCE) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k_ <= 0, 0.0, stats.beta.ppf(a, k_, n_ - k_ + 1))
        high = np.where(k_ >= n_, 1.0, stats.beta.ppf(1 - a, k_ + 1, n_ - k_))
    return np.asarray(low, dtype=float), np.asarray(high, dtype=float)


def holm_rows(p: npt.ArrayLike) -> Array:
    """Holm-adjusted p-values along the last axis; NaN marks a test outside the family."""
    p_ = np.asarray(p, dtype=float)
    inside = ~np.isnan(p_)
    m = inside.sum(axis=-1, keepdims=True)
    filled = np.where(inside, p_, np.inf)
    order = np.argsort(filled, axis=-1, kind="stable")
    ranked = np.take_along_axis(filled, order, axis=-1)
    factor = m - np.arange(p_.shape[-1])
    with np.errstate(invalid="ignore"):
        stepped = np.maximum.accumulate(np.where(np.isfinite(ranked), factor * ranked, -np.inf), -1)
    stepped = np.minimum(stepped, 1.0)
    adjusted = np.empty_like(filled)
    np.put_along_axis(adjusted, order, stepped, axis=-1)
    return np.where(inside, adjusted, np.nan)


@dataclass(frozen=True)
class PairedEvidence:
    """Seed-paired differences, oriented so that positive = the student is better.

    Every field has the shape of the input less its last (pairs) axis.
    """

    n: Array
    mean: Array
    low: Array
    """95% t-interval of the mean difference (NaN where the differences do not vary)."""
    high: Array
    p: Array
    """Two-sided paired t-test; NaN where it cannot run (n < 2 or no variance)."""
    wins: Array
    """Pairs the student wins (ties count half)."""
    p_win: Array
    """Estimate of P(student better on a seed)."""
    p_win_low: Array
    """Clopper-Pearson 95% interval of P(student better on a seed)."""
    p_win_high: Array


def paired_evidence(diffs: npt.ArrayLike) -> PairedEvidence:
    """Paired t and P(student better) from differences along the last axis (NaN = no pair)."""
    d = np.asarray(diffs, dtype=float)
    ok = ~np.isnan(d)
    n = ok.sum(axis=-1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(d, axis=-1) / n, np.nan)
        centred = np.where(ok, d - mean[..., None], 0.0)
        sd = np.sqrt(np.sum(centred**2, axis=-1) / (n - 1))
        se = sd / np.sqrt(n)
        df = np.maximum(n - 1, 1)
        # identical differences (BLiMP is discrete) leave only rounding noise in sd: no test
        usable = (n >= 2) & (sd > 1e-9 * np.maximum(np.abs(mean), 1e-12))
        t = np.where(usable, mean / se, np.nan)
        p = np.where(usable, 2 * stats.t.sf(np.abs(t), df), np.nan)
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se
        low = np.where(usable, mean - half, np.nan)
        high = np.where(usable, mean + half, np.nan)
    wins = np.sum(np.where(ok, (d > 0) + 0.5 * (d == 0), 0.0), axis=-1)
    # Clopper-Pearson on whole wins; a half win (tie) is rounded towards 0.5 in both bounds
    w_low, _ = clopper_pearson(np.floor(wins), n)
    _, w_high = clopper_pearson(np.ceil(wins), n)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_win = np.where(n > 0, wins / n, np.nan)
    return PairedEvidence(n, mean, low, high, p, wins, p_win, w_low, w_high)


def expected_best_at(values: npt.ArrayLike, k: int, *, higher: bool) -> Array:
    """Expected best of k draws (with replacement) along the last axis; NaNs are not draws."""
    v = np.asarray(values, dtype=float)
    sign = 1.0 if higher else -1.0
    x = np.sort(np.where(np.isnan(v), np.inf, sign * v), axis=-1)  # NaNs sort last
    n = np.sum(~np.isnan(v), axis=-1, keepdims=True).astype(float)
    i = np.arange(1, v.shape[-1] + 1, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.clip(i / n, 0, 1) ** k - np.clip((i - 1) / n, 0, 1) ** k
    x = np.where(np.isfinite(x), x, 0.0)  # the NaN slots carry zero weight
    return sign * np.sum(w * x, axis=-1)


def matched_budget_test(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    higher: bool,
    n_permutations: int = N_RESAMPLES,
    rng: np.random.Generator | None = None,
) -> tuple[Array, Array, int]:
    """Expected best at equal budget k = min(n_a, n_b), a minus b, with a permutation p-value.

    Two pools of different sizes, or one pruned and one not, are compared as if each had
    run k trials (Dodge et al.'s expected maximum). Under "same distribution" the labels are
    exchangeable, so the two-sided permutation p is exact. Vectorised over leading axes;
    returns (difference, p, k).
    """
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = xa.shape[-1], xb.shape[-1]
    k = min(na, nb)
    rng = np.random.default_rng(SEED) if rng is None else rng
    observed = expected_best_at(xa, k, higher=higher) - expected_best_at(xb, k, higher=higher)
    pooled = np.concatenate([xa, xb], axis=-1)
    shape = (*pooled.shape[:-1], n_permutations, na + nb)
    shuffled = rng.permuted(np.broadcast_to(pooled[..., None, :], shape), axis=-1)
    null = expected_best_at(shuffled[..., :na], k, higher=higher) - expected_best_at(
        shuffled[..., na:], k, higher=higher
    )
    extreme = np.sum(np.abs(null) >= np.abs(observed)[..., None] - 1e-12, axis=-1)
    return observed, (1 + extreme) / (1 + n_permutations), k
