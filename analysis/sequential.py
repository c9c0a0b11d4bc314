"""Seeds that grow until the verdict is decided: an anytime-valid paired t-test.

A `seeds: auto` stage runs seed repeats in rounds and looks at the store after each round;
the looks, the number of rounds and even `max_seeds` (raised on a finished study) are chosen
while the data come in. A fixed-n t-test read at every look would spend its 5% again at each
one, so a seeds:auto study is judged by an e-process instead: the scale-invariant Bayes
factor of the paired t-test (a normal prior of variance PRIOR_SCALE on the standardized
effect mean/sd, the right Haar prior 1/sd on the scale; Rouder et al. 2009, eq. 1 at fixed g).
Under the null "mean difference 0, any sd" it is a test martingale in the filtration of the
scale-invariant data (Pérez-Ortiz, Lardy, de Heide & Grünwald 2024), so by Ville's inequality
P(it ever reaches 1/alpha) <= alpha, whatever the stopping rule. `anytime_p` = 1 / its
running maximum is then a valid p-value at any stopping time, and the report's Holm family
takes it in place of the fixed-n p (Holm needs only valid p-values).

The price is power at small n: with PRIOR_SCALE 2, a standardized effect of 1.5 (+2 pp BLiMP
at 1 pp seed noise) is found about 6 times in 10 by 8 pairs at one test's 5%. What it buys:
a clear effect stops after the first look, and growing a finished study never invalidates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from analysis.load import Frames
    from analysis.verdict import Verdict

__all__ = [
    "PRIOR_SCALE",
    "StageLook",
    "anytime_p",
    "boundary_t",
    "confidence_sequence",
    "e_values",
    "sequential_stages",
    "stage_look",
]

PRIOR_SCALE = 2.0
"""g: prior variance of the standardized effect (mean / sd of the seed-pair differences).

Chosen on the calibration's planted scenarios: 0.5 and 1 find a +2 pp effect later (8+ pairs),
4 and up lose power at 8 to 20 pairs; 2 decides clear effects at the first looks."""

Array = npt.NDArray[np.float64]


def e_values(diffs: npt.ArrayLike, *, g: float = PRIOR_SCALE) -> Array:
    """The e-process after each pair, in order along the last axis (NaN pairs are skipped).

    E_n = (1 + n g)^(-1/2) * [(1 + t²/((1 + n g) v)) / (1 + t²/v)]^(-(v + 1)/2), with t the
    paired t-statistic of the first n pairs and v = n - 1; E = 1 before the second pair.
    """
    d = np.asarray(diffs, dtype=float)
    ok = ~np.isnan(d)
    x = np.where(ok, d, 0.0)
    n = np.cumsum(ok, axis=-1).astype(float)
    s1 = np.cumsum(x, axis=-1)
    s2 = np.cumsum(x * x, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = s1 / n
        var = np.maximum(s2 - n * mean**2, 0.0) / (n - 1)
        nu = n - 1
        # identical differences: no variance, so nothing scale-free to test (the t-test's rule)
        usable = (n >= 2) & (var > 1e-18 * np.maximum(mean**2, 1e-24))
        t2 = np.where(usable, mean**2 / (var / n), 0.0)
        ng = n * g
        log_e = -0.5 * np.log1p(ng) - (nu + 1) / 2 * (
            np.log1p(t2 / ((1 + ng) * nu)) - np.log1p(t2 / nu)
        )
    return np.where(usable, np.exp(log_e), 1.0)


def anytime_p(diffs: npt.ArrayLike, *, g: float = PRIOR_SCALE) -> Array:
    """min(1, 1 / the running maximum of the e-process) over the pairs so far (last axis).

    Valid at any stopping time: P(anytime_p <= a) <= a under the null for every a. NaN with
    fewer than 2 pairs.
    """
    e = e_values(diffs, g=g)
    n = np.sum(~np.isnan(np.asarray(diffs, dtype=float)), axis=-1)
    p = np.minimum(1.0, 1.0 / np.max(e, axis=-1, initial=1.0))
    return np.where(n >= 2, p, np.nan)


def boundary_t(n: int, alpha: float, *, g: float = PRIOR_SCALE) -> float:
    """|t| at which the e-process of n pairs reaches 1/alpha (inf: it cannot at this n).

    Closed form: with x = t²/v and a = 1/(1 + n g), E_n = 1/alpha solves
    (1 + x) / (1 + a x) = q with q = (sqrt(1 + n g) / alpha)^(2/(v + 1)).
    """
    if n < 2:
        return float("inf")
    nu = n - 1
    q = (np.sqrt(1 + n * g) / alpha) ** (2 / (nu + 1))
    a = 1 / (1 + n * g)
    if q * a >= 1:
        return float("inf")
    return float(np.sqrt(nu * (q - 1) / (1 - q * a)))


def confidence_sequence(
    diffs: npt.ArrayLike, *, alpha: float = 0.05, g: float = PRIOR_SCALE
) -> tuple[float, float] | None:
    """Anytime-valid 1 - alpha interval of the mean difference (NaN pairs skipped, in order).

    The means mu the e-process of (diffs - mu) has not rejected at any n so far: at each n,
    |t_n(mu)| < boundary_t(n), i.e. mu within mean_n ± boundary_t(n) sd_n / sqrt(n), and the
    intersection over n. It covers the true mean at every stopping time with probability
    1 - alpha, as the sequential verdict needs; None while it is still unbounded (too few pairs).
    """
    d = np.asarray(diffs, dtype=float)
    d = d[~np.isnan(d)]
    low, high = -np.inf, np.inf
    for n in range(2, d.size + 1):
        sd = float(d[:n].std(ddof=1))
        half = boundary_t(n, alpha, g=g) * sd / np.sqrt(n)
        if not np.isfinite(half) or sd == 0:
            continue
        mean = float(d[:n].mean())
        low, high = max(low, mean - half), min(high, mean + half)
    if not (np.isfinite(low) and np.isfinite(high)) or low > high:
        return None
    return low, high


# ---------------------------------------------------------------- what a look at the store says


def sequential_stages(frames: Frames) -> set[str]:
    """Stages the stored config declares with `seeds: auto` (their seed counts were chosen
    by looking at the data, so their comparisons are judged by the e-process)."""
    stages = frames.config.get("stages") if isinstance(frames.config, dict) else None
    if not isinstance(stages, dict):
        return set()
    return {
        str(name)
        for name, entry in stages.items()
        if isinstance(entry, dict) and entry.get("seeds") == "auto"
    }


@dataclass(frozen=True)
class StageLook:
    """What one look at a seeds:auto stage's comparisons says: stop, or run another round."""

    stage: str
    seeds: int
    """Distinct seeds the stage holds."""
    settled: bool
    """Every (comparison, metric) these seeds feed is decided, or no seed can decide it."""
    decided: list[str] = field(default_factory=list)
    open: list[str] = field(default_factory=list)
    """'comparison: metric' still open; empty when settled."""


def settled(v: Verdict) -> bool:
    """Decided, or past deciding by seeds: the matched-budget guard (read on the searches'
    trials, which more seeds do not change) says the two searches do not differ, the test
    was left out of the family for a reason other than too few pairs (BLiMP at chance), or
    no pair records the metric at all."""
    from analysis.verdict import ALPHA, MIN_PAIRS

    if v.verdict != "inconclusive" or v.n_pairs == 0:  # 0: the metric is not recorded
        return True
    if v.guard is not None and (v.guard.get("p") is None or v.guard["p"] >= ALPHA):
        return True
    return not v.in_family and v.n_pairs >= MIN_PAIRS and v.p is not None


def stage_look(frames: Frames, stage: str) -> StageLook:
    """Read the store as the report does, for the comparisons a re-seeding stage feeds.

    A reference stage feeds the comparisons with the reference; a repeats stage every
    seed-paired comparison (its repeats are one side of each).
    """
    from analysis.verdict import METRIC_NAMES, verdicts

    t = frames.trials
    rows = t[t["stage"] == stage]
    seeds = int(rows["seed"].nunique())
    kinds = rows["stage_kind"].dropna().unique()
    kind = str(kinds[0]) if len(kinds) else ""
    decided, still_open = [], []
    for cv in verdicts(frames):
        fed = cv.kind == "reference" if kind == "reference" else True
        for v in cv.metrics:
            if not fed or v.pairing != "seed":
                continue
            name = f"{cv.label}: {METRIC_NAMES.get(v.metric, v.metric)}"
            if v.verdict != "inconclusive":
                decided.append(f"{name} {v.verdict}")
            elif not settled(v):
                still_open.append(name)
    return StageLook(stage, seeds, not still_open, decided, still_open)
