"""What would decide an inconclusive verdict: the smallest effect the seed pairs could detect,
and how many seed pairs would detect the effect a researcher cares about.

Both are for the verdict's own test, a two-sided paired t on the seed pairs at the Holm level
the test faces first (ALPHA / the size of the family), with 80% power, from the observed sd of
the paired differences (scipy's noncentral t, not a normal approximation). A `seeds: auto` row
is judged by the anytime-valid test of analysis.sequential, whose bar at n pairs is higher
(`boundary_t`); with `sequential=True` the figures are for that bar, read at the last look only
(the looks before can only add power, so they are at least what the row needs, never less).

    >>> round(detectable_effect(0.01, 5, 0.05), 4)  # sd of the paired differences 1 pp
    0.0168
    >>> seeds_needed(0.01, 0.01, 0.05)
    10
"""

from __future__ import annotations

import math
from typing import Any

from scipy import optimize, stats

from analysis.sequential import boundary_t

__all__ = [
    "DEFAULT_TARGET",
    "MAX_SEEDS",
    "POWER",
    "detectable_effect",
    "paired_power",
    "seeds_needed",
    "target_effects",
]

POWER = 0.80
MAX_SEEDS = 1000
"""Beyond this many seed pairs the answer is "more than 1000": the study is not the tool."""
DEFAULT_TARGET = {"blimp_overall": 0.01, "test_loss": 0.02, "dev_loss": 0.02}
"""report.target_effect's defaults in the store's units: 1 pp of BLiMP, 0.02 nats/token."""


def paired_power(
    effect: float, sd: float, n: int, alpha: float, *, sequential: bool = False
) -> float:
    """Power of the two-sided paired t-test at level alpha on n pairs.

    sequential: the anytime-valid test's bar at n pairs (analysis.sequential.boundary_t) in
    place of the t quantile; 0 where that bar cannot be reached at n.
    """
    if n < 2 or sd <= 0:
        return math.nan
    df = n - 1
    crit = boundary_t(n, alpha) if sequential else stats.t.ppf(1 - alpha / 2, df)
    if not math.isfinite(crit):
        return 0.0
    nc = abs(effect) * math.sqrt(n) / sd
    # each tail alone (the lower as the upper tail of -t): scipy's cdf gives NaN far out in the
    # lower tail, and a NaN there must not swap the exact upper tail for a normal guess
    upper = float(stats.nct.sf(crit, df, nc))
    lower = float(stats.nct.sf(crit, df, -nc))
    if not math.isfinite(upper):  # scipy gives up far in the tail: power is ~1
        upper = float(stats.norm.sf(crit - nc))
    if not math.isfinite(lower):
        lower = float(stats.norm.sf(crit + nc))
    return min(max(upper + lower, 0.0), 1.0)


def detectable_effect(
    sd: float, n: int, alpha: float, power: float = POWER, *, sequential: bool = False
) -> float | None:
    """The smallest true mean difference found with `power` at n pairs (None below 2 pairs,
    or where the sequential bar cannot be reached at n)."""
    if n < 2 or not math.isfinite(sd) or sd <= 0:
        return None
    if sequential and not math.isfinite(boundary_t(n, alpha)):
        return None
    high = sd
    while paired_power(high, sd, n, alpha, sequential=sequential) < power:
        high *= 2
    return float(
        optimize.brentq(
            lambda d: paired_power(d, sd, n, alpha, sequential=sequential) - power, 0.0, high
        )
    )


def seeds_needed(
    sd: float,
    effect: float,
    alpha: float,
    power: float = POWER,
    *,
    at_least: int = 3,
    sequential: bool = False,
) -> int | None:
    """Fewest seed pairs that find `effect` with `power` (None: more than MAX_SEEDS)."""
    if not math.isfinite(sd) or sd <= 0 or effect <= 0:
        return None
    n = max(at_least, 2)
    while n <= MAX_SEEDS:
        if paired_power(effect, sd, n, alpha, sequential=sequential) >= power:
            return n
        n += 1 if n < 50 else max(1, n // 20)
    return None


def target_effects(config: dict[str, Any]) -> dict[str, float]:
    """report.target_effect of the stored sweep config, in the store's units (BLiMP as a fraction).

    The config was validated by sweep.config when the sweep ran; an older sweep has no report
    section and gets the defaults (1 pp BLiMP, 0.02 nats/token).
    """
    report = config.get("report") if isinstance(config, dict) else None
    target = (report or {}).get("target_effect") if isinstance(report, dict) else None
    out = dict(DEFAULT_TARGET)
    if isinstance(target, dict):
        if target.get("blimp_pp") is not None:
            out["blimp_overall"] = float(target["blimp_pp"]) / 100
        if target.get("loss") is not None:
            out["test_loss"] = out["dev_loss"] = float(target["loss"])
    return out
