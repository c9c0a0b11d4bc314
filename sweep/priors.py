"""Log-normal priors (W&B's `log_normal` and `q_log_normal`) drawn through their quantile.

Optuna has no log-normal distribution, so a `lognormal` hyperparameter is searched as its
quantile u: Optuna samples u uniformly in [0, 1] (its start-up trials) or models it (TPE),
and the trial trains with the prior's inverse CDF at u, exp(mu + sigma * Phi^-1(u)). A
uniform u makes the start-up draws follow the prior exactly; TPE then models the objective
on the prior's own probability scale. A `q_lognormal` value is round(x / q) * q of such an
x (W&B: `round(X / q) * q`, log X ~ N(mu, sigma)).

Optional `low`/`high` truncate the prior: the draw is the prior conditioned on
low <= value <= high (a quantised value's bounds apply to the rounded value), which keeps
a value the parameter refuses (a batch of 0) out without moving any other value's mass.
The quantile never reaches 0 or 1 (QUANTILE_TAIL): Optuna's samplers may return the ends
of their range, where the inverse CDF is 0 or infinite.

Example::

    prior = QLogNormal(dist="q_lognormal", mu=5.0, sigma=1.5, low=1)
    low, high = quantile_range(prior)     # Optuna's FloatDistribution(low, high)
    prior_value(prior, 0.5)               # 148 = round(e^5)
"""

from __future__ import annotations

import math
import sys

from scipy.special import ndtr, ndtri

from sweep.config import LogNormal, QLogNormal

__all__ = [
    "QUANTILE",
    "QUANTILE_TAIL",
    "prior_mean",
    "prior_support",
    "prior_value",
    "quantile_range",
]

QUANTILE = "quantile_"
"""Optuna's name for the quantile u of a log-normal hyperparameter (`quantile_lr`)."""
QUANTILE_TAIL = 1e-12
"""Prior mass left out at each end (u in [1e-12, 1 - 1e-12]): z within +-7.03 sigma."""

LogNormalPrior = LogNormal | QLogNormal
_LOG_MAX_FLOAT = math.log(sys.float_info.max)


def _continuous_bounds(prior: LogNormalPrior) -> tuple[float, float]:
    """The interval x (before rounding) is conditioned on; 0 and inf where unbounded."""
    low, high = prior.low, prior.high
    if isinstance(prior, QLogNormal):
        q = float(prior.q)
        # round(x / q) >= k  <=>  x >= (k - 1/2) q, ties aside (they have no mass)
        x_low = (math.ceil(low / q) - 0.5) * q if low is not None else 0.0
        x_high = (math.floor(high / q) + 0.5) * q if high is not None else math.inf
        return max(x_low, 0.0), x_high
    return (low if low is not None else 0.0), (high if high is not None else math.inf)


def _cdf(prior: LogNormalPrior, x: float) -> float:
    if x <= 0:
        return 0.0
    if math.isinf(x):
        return 1.0
    return float(ndtr((math.log(x) - prior.mu) / prior.sigma))


def quantile_range(prior: LogNormalPrior) -> tuple[float, float]:
    """The quantiles u Optuna samples in: the prior's mass within low..high, tails cut."""
    x_low, x_high = _continuous_bounds(prior)
    return (
        max(QUANTILE_TAIL, _cdf(prior, x_low)),
        min(1.0 - QUANTILE_TAIL, _cdf(prior, x_high)),
    )


def prior_value(prior: LogNormalPrior, u: float) -> float | int:
    """The value a trial trains with at quantile u: exp(mu + sigma z), rounded to q.

    An integer q gives an int (batch sizes, epochs, warmup steps). Values are clamped into
    low..high, which only moves an endpoint's rounding error (the ends have no mass).
    """
    z = prior.mu + prior.sigma * float(ndtri(u))
    if z > _LOG_MAX_FLOAT:  # beyond float range: validation refuses such a prior
        return math.inf
    x = math.exp(z)
    if isinstance(prior, LogNormal):
        low = prior.low if prior.low is not None else 0.0
        high = prior.high if prior.high is not None else math.inf
        return min(max(x, low), high)
    q = prior.q
    k = round(x / q)  # half to even, as numpy's round in W&B
    if prior.low is not None:
        k = max(k, math.ceil(prior.low / q))
    if prior.high is not None:
        k = min(k, math.floor(prior.high / q))
    return k * q if isinstance(q, int) else float(k * q)


def prior_support(prior: LogNormalPrior) -> tuple[float | int, float | int]:
    """The smallest and largest value a trial can train with (what validation checks)."""
    u_low, u_high = quantile_range(prior)
    return prior_value(prior, u_low), prior_value(prior, u_high)


def prior_mean(prior: LogNormalPrior, points: int = 4096) -> float:
    """The value a trial trains with on average: prior_value over evenly spaced quantiles
    (midpoints) of the prior's range (what `sweep validate` plans a sampled epochs with)."""
    u_low, u_high = quantile_range(prior)
    step = (u_high - u_low) / points
    return math.fsum(prior_value(prior, u_low + (i + 0.5) * step) for i in range(points)) / points
