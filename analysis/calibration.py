"""Is the verdict calibrated? Synthetic sweeps through the report's decision procedure.

    python -m analysis.calibration            # the table in the closing note (~10 s of CPU)
    python -m analysis.calibration --sweeps 2000

Each synthetic sweep draws a teacher pool and a student pool of configs from the SAME
distribution (config quality spread plus seed noise), optionally prunes the students
ASHA-style (the worse half by epoch-1 dev loss stops), chooses each pool's best config by dev
loss, re-runs both with the same seeds (a shared seed component correlates the pairs) and
reads held-out BLiMP and test loss. analysis.verdict.decide then says "better", "worse" or
"inconclusive", exactly as the report does. Printed per scenario: the false-positive rate of
"student better" (on either metric), the coverage of the 95% intervals for the mean BLiMP
difference (for a sequential scenario, the anytime-valid interval the report shows for such a
row, at the look where the sweep stopped) and for P(student better on a seed) (against each
sweep's true values), and, with a planted student effect, the power.

Sequential scenarios (`seeds: auto`) run the same sweeps in rounds: a first look at
FIRST_LOOK seeds, then one seed more per look up to `seeds` (max_seeds); each look decides with
the anytime-valid test (analysis.sequential) and stops once every metric is decided or past
deciding by seeds (the matched-budget guard says the searches do not differ). Printed beside
their error rate and power: the mean seeds a sweep used.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.comparisons import COMPARISON_KINDS, MATCHED_BUDGET
from analysis.sequential import confidence_sequence
from analysis.stats import matched_budget_test
from analysis.verdict import ALPHA, Decision, blimp_at_chance, decide
from sweep.store.read import ENSEMBLE_COLUMNS, EVALUATION_COLUMNS

__all__ = [
    "PowerLimits",
    "Scenario",
    "SpreadScenario",
    "calibrate",
    "calibrate_spread",
    "default_scenarios",
    "default_spread_scenarios",
    "main",
    "power_limits",
    "simulate",
    "simulate_spread",
    "spread_frames",
    "synthetic_frames",
]

CONFIG_SPREAD = 0.010
"""sd of a config's true BLiMP across the search space (1 pp)."""
SHARED_SEED = 0.3
"""Share of seed variance two runs with the same seed have in common (data order)."""
BLIMP_NOISE = 0.003
"""BLiMP measurement noise of one evaluation (0.3 pp)."""
LOSS_PER_BLIMP = 5.0
"""Test loss falls 0.05 nats/token per BLiMP point of skill."""
LOSS_NOISE = 0.005
FULL_BLIMP = 67_000
"""Pairs of the full BLiMP (67 paradigms of 1,000)."""
FIRST_LOOK = 4
"""Seeds at a sequential scenario's first look (sweep.yaml's default first_look)."""


@dataclass(frozen=True)
class Scenario:
    name: str
    teachers: int
    students: int
    seeds: int
    noise: float
    """Seed noise sd in BLiMP fraction (0.01 = 1 pp)."""
    asha: bool = False
    effect: float = 0.0
    """Planted student advantage in BLiMP fraction (0.02 = +2 pp); 0 = the null."""
    kind: str = "teachers"
    """The comparison kind simulated (analysis.comparisons.COMPARISON_KINDS): its guard applies.
    "reference": the other side is one fixed config whose true BLiMP is the student's chosen
    config's minus `effect` (no search on that side)."""
    epochs: tuple[int, int] = (2, 2)
    """Epochs the teachers and the students trained; the side with more gains `epoch_gain`."""
    epoch_gain: float = 0.01
    level: float = 0.6
    """True BLiMP of an average config (0.5: chance)."""
    blimp_pairs: int | None = None
    """BLiMP pairs scored: binomial measurement noise and the at-chance rule (None: 67,000)."""
    sequential: bool = False
    """seeds: auto with max_seeds = `seeds`: rounds of one seed from FIRST_LOOK on."""


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    sweeps: int
    student_better: float
    """Fraction of sweeps with "student better" on either metric."""
    coverage_difference: float
    coverage_p_better: float
    seed_pairs_alone: float
    """Fraction "student better" had the verdict rested on the seed pairs alone."""
    mean_seeds: float = float("nan")
    """Seeds a sweep ran before it stopped (sequential scenarios; fixed: `seeds`)."""
    student_worse: float = 0.0
    """Fraction of sweeps with "student worse" on either metric."""


def default_scenarios() -> list[Scenario]:
    null = [
        Scenario(f"equal 8v8, {s} seeds, noise {n * 100:g} pp", 8, 8, s, n)
        for s in (2, 3, 5)
        for n in (0.005, 0.01, 0.02)
    ]
    null += [
        Scenario("unequal 16 teachers v 32 students, 5 seeds", 16, 32, 5, 0.01),
        Scenario("unequal 32 teachers v 16 students, 5 seeds", 32, 16, 5, 0.01),
        Scenario("ASHA-pruned students 8v8, 5 seeds", 8, 8, 5, 0.01, asha=True),
        Scenario("ASHA + unequal 16v32, 3 seeds", 16, 32, 3, 0.01, asha=True),
        Scenario("equal 8v8, 8 seeds, noise 1 pp", 8, 8, 8, 0.01),
    ]
    null += [  # the three defects of issue 23, each kept fixed by its own scenario
        Scenario("unequal epochs (teachers 1, students 2), 5 seeds", 8, 8, 5, 0.01, epochs=(1, 2)),
        Scenario("reference, same truth as the student, 5 seeds", 8, 8, 5, 0.01, kind="reference"),
        Scenario(
            "both sides at chance (1,340 pairs), 5 seeds",
            8,
            8,
            5,
            0.01,
            level=0.5,
            blimp_pairs=1340,
        ),
    ]
    planted = [
        Scenario(f"planted +2 pp, {s} seeds, noise 1 pp", 8, 8, s, 0.01, effect=0.02)
        for s in (2, 3, 5, 8)
    ]
    planted += [
        Scenario("planted +2 pp, 16v16, 5 seeds, noise 1 pp", 16, 16, 5, 0.01, effect=0.02),
        Scenario("planted +2 pp, ASHA 16v32, 5 seeds", 16, 32, 5, 0.01, asha=True, effect=0.02),
        Scenario(
            "reference truly 3 pp better, 5 seeds", 8, 8, 5, 0.01, kind="reference", effect=-0.03
        ),
    ]
    sequential = [
        Scenario("seeds: auto, null 8v8, max 12, noise 1 pp", 8, 8, 12, 0.01, sequential=True),
        Scenario("seeds: auto, null 16v32, max 20, noise 1 pp", 16, 32, 20, 0.01, sequential=True),
        Scenario("seeds: auto, null ASHA 8v8, max 12", 8, 8, 12, 0.01, asha=True, sequential=True),
        Scenario("seeds: auto, planted +2 pp, max 8", 8, 8, 8, 0.01, effect=0.02, sequential=True),
        Scenario(
            "seeds: auto, planted +2 pp, max 12", 8, 8, 12, 0.01, effect=0.02, sequential=True
        ),
        Scenario(
            "seeds: auto, planted +2 pp, max 20", 8, 8, 20, 0.01, effect=0.02, sequential=True
        ),
    ]
    return null + planted + sequential


def sequential_decision(
    diffs: np.ndarray,
    guard_p: np.ndarray,
    guard_favours: np.ndarray,
    *,
    first_look: int,
    eligible: np.ndarray | None = None,
) -> tuple[Decision, np.ndarray]:
    """Looks at first_look, first_look + 1, ... seeds; each sweep keeps the decision of the
    look where it stopped (every metric decided, or its guard says seeds cannot decide it).

    Returns that decision (arrays shaped (S, metrics)) and the seeds each sweep ran (S,).
    """
    max_seeds = diffs.shape[-1]
    looks = list(range(min(first_look, max_seeds), max_seeds + 1))
    futile = guard_p >= ALPHA  # read on the searches' trials: more seeds do not change it
    stopped = np.zeros(diffs.shape[0], bool)
    used = np.full(diffs.shape[0], max_seeds)
    kept: Decision | None = None
    for look in looks:
        d = decide(
            diffs[..., :look],
            eligible=eligible,
            guard_p=guard_p,
            guard_favours=guard_favours,
            sequential=np.ones(guard_p.shape, bool),
        )
        take = ~stopped
        kept = d if kept is None else _where(take, d, kept)
        done = np.all((d.code != 0) | futile, axis=-1)
        used = np.where(take & done, look, used)
        stopped |= done
    assert kept is not None
    return kept, used


def _where(take: np.ndarray, new: Decision, old: Decision) -> Decision:
    """Per sweep (first axis): `new` where take, else `old`; the fields verdicts are read from."""

    def pick(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(take.reshape(-1, *[1] * (a.ndim - 1)), a, b)

    ev_new, ev_old = new.evidence, old.evidence
    evidence = type(ev_new)(
        *(pick(getattr(ev_new, f), getattr(ev_old, f)) for f in ev_new.__dataclass_fields__)
    )
    return Decision(
        evidence,
        pick(new.in_family, old.in_family),
        pick(new.p_holm, old.p_holm),
        pick(new.code, old.code),
        pick(new.blocked, old.blocked),
    )


@dataclass(frozen=True)
class _Sweeps:
    """Arrays of S synthetic sweeps."""

    diffs: np.ndarray  # (S, 2, seeds): BLiMP and test loss, oriented + = student better
    truth_difference: np.ndarray  # (S,) true mean BLiMP difference of the two chosen configs
    truth_p_better: np.ndarray  # (S,) true P(student better on a seed), BLiMP
    guard_p: np.ndarray  # (S, 2) the pools' matched-budget permutation p
    guard_favours: np.ndarray  # (S, 2)
    eligible: np.ndarray  # (S, 2) False where both sides' BLiMP is at chance
    pools: dict[str, np.ndarray]  # per-trial arrays for synthetic_frames


def simulate(
    sc: Scenario, sweeps: int, rng: np.random.Generator, n_permutations: int = 199
) -> _Sweeps:
    """Draw `sweeps` synthetic sweeps of one scenario (vectorised)."""
    S = sweeps
    seed_sd = sc.noise
    reference = sc.kind == "reference"
    pairs = sc.blimp_pairs or FULL_BLIMP
    blimp_noise = max(BLIMP_NOISE, float(np.sqrt(sc.level * (1 - sc.level) / pairs)))
    gain_t = sc.epoch_gain * max(0, sc.epochs[0] - sc.epochs[1])  # the longer-trained side's
    gain_s = sc.epoch_gain * max(0, sc.epochs[1] - sc.epochs[0])
    q_t = rng.normal(0, CONFIG_SPREAD, (S, sc.teachers)) + gain_t
    q_s = rng.normal(0, CONFIG_SPREAD, (S, sc.students)) + gain_s + (0 if reference else sc.effect)
    skill_t = q_t + rng.normal(0, seed_sd, q_t.shape)
    skill_s = q_s + rng.normal(0, seed_sd, q_s.shape)
    dev_t = 4.0 - LOSS_PER_BLIMP * skill_t + rng.normal(0, LOSS_NOISE, q_t.shape)
    dev_s = 4.0 - LOSS_PER_BLIMP * skill_s + rng.normal(0, LOSS_NOISE, q_s.shape)
    early_t = dev_t + 0.3 + rng.normal(0, 0.02, q_t.shape)  # epoch-1 dev loss
    early_s = dev_s + 0.3 + rng.normal(0, 0.02, q_s.shape)
    complete_s = np.ones(q_s.shape, bool)
    if sc.asha:  # keep the better half at the first rung (reduction factor 2)
        cut = np.median(early_s, axis=1, keepdims=True)
        complete_s = early_s <= cut
    best_t = np.argmin(dev_t, axis=1)
    best_s = np.argmin(np.where(complete_s, dev_s, np.inf), axis=1)
    qb_t = np.take_along_axis(q_t, best_t[:, None], 1)[:, 0]
    qb_s = np.take_along_axis(q_s, best_s[:, None], 1)[:, 0]
    if reference:  # one fixed config, no search: its truth is set against the student's choice
        qb_t = qb_s - sc.effect
    # the repeats: same seeds on both sides share part of their seed effect
    m = sc.seeds
    shared = rng.normal(0, seed_sd * np.sqrt(SHARED_SEED), (S, m))
    own_sd = seed_sd * np.sqrt(1 - SHARED_SEED)
    z_t = qb_t[:, None] + shared + rng.normal(0, own_sd, (S, m))
    z_s = qb_s[:, None] + shared + rng.normal(0, own_sd, (S, m))
    blimp_t = sc.level + z_t + rng.normal(0, blimp_noise, (S, m))
    blimp_s = sc.level + z_s + rng.normal(0, blimp_noise, (S, m))
    loss_t = 4.0 - LOSS_PER_BLIMP * z_t + rng.normal(0, LOSS_NOISE, (S, m))
    loss_s = 4.0 - LOSS_PER_BLIMP * z_s + rng.normal(0, LOSS_NOISE, (S, m))
    diffs = np.stack([blimp_s - blimp_t, loss_t - loss_s], axis=1)
    truth = qb_s - qb_t
    sd = np.sqrt(2 * own_sd**2 + 2 * blimp_noise**2)
    truth_p = stats.norm.cdf(truth / sd)
    # the held-out values of every trial of the two searches
    t_blimp = sc.level + skill_t + rng.normal(0, blimp_noise, q_t.shape)
    s_blimp = sc.level + skill_s + rng.normal(0, blimp_noise, q_s.shape)
    t_loss = 4.0 - LOSS_PER_BLIMP * skill_t + rng.normal(0, LOSS_NOISE, q_t.shape)
    s_loss = 4.0 - LOSS_PER_BLIMP * skill_s + rng.normal(0, LOSS_NOISE, q_s.shape)
    guard_p = np.full((S, 2), np.nan)
    favours = np.full((S, 2), np.nan)
    # BLiMP at chance on both sides leaves the family, as in the report
    eligible = np.ones((S, 2), bool)
    eligible[:, 0] = ~(
        blimp_at_chance(blimp_s.mean(axis=1), pairs) & blimp_at_chance(blimp_t.mean(axis=1), pairs)
    )
    if sc.epochs[0] != sc.epochs[1]:  # no epoch count in common: the guard refuses to vouch
        guard_p[:], favours[:] = 1.0, 0.0
    elif sc.asha:  # one comparison for both metrics: every trial's epoch-1 dev loss
        diff, p, _ = matched_budget_test(
            early_s, early_t, higher=False, n_permutations=n_permutations, rng=rng
        )
        guard_p[:] = p[:, None]
        favours[:] = -diff[:, None]
    else:  # like the report: the held-out values of the completed trials
        for j, (a, b, higher) in enumerate(((s_blimp, t_blimp, True), (s_loss, t_loss, False))):
            diff, p, _ = matched_budget_test(
                a, b, higher=higher, n_permutations=n_permutations, rng=rng
            )
            guard_p[:, j] = p
            favours[:, j] = diff if higher else -diff
    pools = {
        "t_dev": dev_t, "s_dev": dev_s, "t_early": early_t, "s_early": early_s,
        "t_blimp": t_blimp, "s_blimp": s_blimp, "t_loss": t_loss, "s_loss": s_loss,
        "s_complete": complete_s, "best_t": best_t, "best_s": best_s,
        "rep_t_blimp": blimp_t, "rep_s_blimp": blimp_s, "rep_t_loss": loss_t, "rep_s_loss": loss_s,
    }  # fmt: skip
    return _Sweeps(diffs, truth, truth_p, guard_p, favours, eligible, pools)


def calibrate(
    scenarios: list[Scenario], sweeps: int = 600, *, seed: int = 0, n_permutations: int = 199
) -> list[Outcome]:
    """Run the decision procedure on `sweeps` synthetic sweeps per scenario."""
    rng = np.random.default_rng(seed)
    out = []
    for sc in scenarios:
        sim = simulate(sc, sweeps, rng, n_permutations)
        guarded = COMPARISON_KINDS[sc.kind].guard is MATCHED_BUDGET
        no_guard = np.full_like(sim.guard_p, np.nan)
        guard_p = sim.guard_p if guarded else no_guard
        if sc.sequential:
            d, used = sequential_decision(
                sim.diffs, guard_p, sim.guard_favours, first_look=FIRST_LOOK, eligible=sim.eligible
            )
            alone_code = sequential_decision(
                sim.diffs,
                no_guard,
                sim.guard_favours,
                first_look=FIRST_LOOK,
                eligible=sim.eligible,
            )[0].code
        else:
            d = decide(
                sim.diffs,
                eligible=sim.eligible,
                guard_p=guard_p,
                guard_favours=sim.guard_favours,
            )
            used = np.full(sweeps, sc.seeds)
            alone_code = decide(sim.diffs, eligible=sim.eligible).code
        alone = np.any(alone_code == 1, axis=1)
        better = np.any(d.code == 1, axis=1)
        worse = np.any(d.code == -1, axis=1)
        ev = d.evidence
        low, high = ev.low[:, 0], ev.high[:, 0]
        if sc.sequential:  # the report's interval for such a row: the confidence sequence
            low, high = _sequence_intervals(sim.diffs[:, 0], used)
        covered = (low <= sim.truth_difference) & (sim.truth_difference <= high)
        covered_p = (ev.p_win_low[:, 0] <= sim.truth_p_better) & (
            sim.truth_p_better <= ev.p_win_high[:, 0]
        )
        out.append(
            Outcome(
                sc,
                sweeps,
                float(better.mean()),
                float(covered.mean()) if sc.seeds >= 2 else float("nan"),
                float(covered_p.mean()),
                float(alone.mean()),
                float(used.mean()),
                float(worse.mean()),
            )
        )
    return out


def _sequence_intervals(diffs: np.ndarray, used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sweep's anytime-valid interval of the BLiMP difference at the look where it stopped
    (analysis.sequential.confidence_sequence; unbounded while it is still unbounded)."""
    low, high = np.full(len(used), -np.inf), np.full(len(used), np.inf)
    for s, n in enumerate(used):
        interval = confidence_sequence(diffs[s, : int(n)], alpha=ALPHA)
        if interval is not None:
            low[s], high[s] = interval
    return low, high


# ---------------------------------------------------------------- what any procedure could reach


@dataclass(frozen=True)
class PowerLimits:
    """Closed-form power of the two legs a search-vs-search verdict stands on, each at its best:
    one two-sided test at ALPHA, no multiplicity, every variance known where it helps."""

    seed_pairs: float
    """The paired t on the seed pairs of the two chosen configs, unadjusted and unguarded:
    the chosen configs' true difference is the planted effect plus the luck of two selections
    (the true quality of a dev-chosen config among n, a concomitant of normal order
    statistics), averaged over that luck."""
    pool_means: float
    """A z-test of the two searches' mean held-out test loss (in BLiMP units, the better
    measured of the two metrics) with the variance of a trial known: the most any test of the
    searches' trials alone can find."""


def _max_normal_variance(n: int) -> float:
    """Variance of the largest of n standard normals (numerical integration)."""
    from scipy import integrate

    def moment(k: int) -> float:
        def f(z: float) -> float:
            return float(z**k * n * stats.norm.pdf(z) * stats.norm.cdf(z) ** (n - 1))

        return float(integrate.quad(f, -12, 12)[0])

    return moment(2) - moment(1) ** 2


def power_limits(sc: Scenario) -> PowerLimits:
    """The two legs' power for a planted search-vs-search scenario of equal pools, no pruning,
    equal epochs (the model of `simulate`, in closed form)."""
    from analysis.power import paired_power

    if sc.kind != "teachers" or sc.asha or sc.teachers != sc.students or sc.sequential:
        raise ValueError(f"{sc.name}: power_limits covers equal, unpruned 'teachers' scenarios")
    n, noise = sc.teachers, sc.noise
    pairs = sc.blimp_pairs or FULL_BLIMP
    blimp_noise = max(BLIMP_NOISE, float(np.sqrt(sc.level * (1 - sc.level) / pairs)))
    loss_noise = LOSS_NOISE / LOSS_PER_BLIMP  # test loss in BLiMP units
    # the dev loss ranks a trial's skill (config quality + its seed) almost without error
    rho2 = CONFIG_SPREAD**2 / (CONFIG_SPREAD**2 + noise**2 + loss_noise**2)
    chosen_var = CONFIG_SPREAD**2 * (1 - rho2 * (1 - _max_normal_variance(n)))
    luck_sd = float(np.sqrt(2 * chosen_var))
    pair_sd = float(np.sqrt(2 * (1 - SHARED_SEED) * noise**2 + 2 * blimp_noise**2))
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)  # E over N(effect, luck_sd^2)
    seed = sum(
        w * paired_power(sc.effect + luck_sd * z, pair_sd, sc.seeds, ALPHA)
        for z, w in zip(nodes, weights, strict=True)
    ) / np.sqrt(2 * np.pi)
    trial_sd = np.sqrt(CONFIG_SPREAD**2 + noise**2 + loss_noise**2)
    z = abs(sc.effect) / (trial_sd * np.sqrt(2 / n))
    crit = stats.norm.ppf(1 - ALPHA / 2)
    pool = stats.norm.sf(crit - z) + stats.norm.cdf(-crit - z)
    return PowerLimits(float(seed), float(pool))


def table(outcomes: list[Outcome]) -> pd.DataFrame:
    rows = []
    for o in outcomes:
        planted = o.scenario.effect != 0
        rows.append(
            {
                "scenario": o.scenario.name,
                "sweeps": o.sweeps,
                "FPR 'student better'": None if planted else o.student_better,
                "FPR 'worse'": None if planted else o.student_worse,
                "power": (o.student_better if o.scenario.effect > 0 else o.student_worse)
                if planted
                else None,
                "coverage mean diff": o.coverage_difference,
                "coverage P(student better)": o.coverage_p_better,
                "seed pairs alone": o.seed_pairs_alone,
                "mean seeds": o.mean_seeds,
            }
        )
    return pd.DataFrame(rows)


def synthetic_frames(sc: Scenario, *, seed: int = 0, name: str = "synthetic") -> object:
    """One synthetic sweep of a scenario as analysis Frames with the contract columns.

    Stages `teachers` and `students_k2` (ensemble of 2) and a `repeats` stage re-running each
    pool's dev-chosen config with seeds 10000 + i, both roles, source_stage set.
    """
    from analysis.load import Frames

    sim = simulate(sc, 1, np.random.default_rng(seed), n_permutations=19)
    p = {k: v[0] for k, v in sim.pools.items()}
    trials: list[dict[str, object]] = []
    metrics: list[dict[str, object]] = []
    tid = 0

    def add(stage: str, kind: str, number: int, role: str, status: str, **kw: object) -> None:
        nonlocal tid
        tid += 1
        row = {
            "sweep": name, "stage": stage, "stage_kind": kind, "trial_id": tid,
            "number": number, "role": role, "status": status, "seed": kw.pop("seed", number),
            "ensemble_size": kw.pop("ensemble_size", 0), "source_stage": kw.pop("source", None),
            "source_trial_id": None, "data_tokens": 120000, "node": "node-a",
            "started_at": pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(seconds=60 * tid),
            "ended_at": pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(seconds=60 * tid + 50),
            "param_lr": 1e-3 * (1 + number % 5), "param_batch_size": 16,
        }  # fmt: skip
        row.update(kw)
        trials.append(row)
        early = kw.get("early")
        if early is not None:
            metrics.append({"trial_id": tid, "stage": stage, "iteration": 1,
                            "name": "dev_loss", "value": early})  # fmt: skip
        if status == "COMPLETE":
            metrics.append({"trial_id": tid, "stage": stage, "iteration": 2,
                            "name": "dev_loss", "value": kw["dev_loss"]})  # fmt: skip

    for i in range(sc.teachers):
        add("teachers", "teachers", i, "teacher", "COMPLETE", dev_loss=p["t_dev"][i],
            test_loss=p["t_loss"][i], blimp_overall=p["t_blimp"][i], early=p["t_early"][i],
            epochs_trained=2.0)  # fmt: skip
    for i in range(sc.students):
        done = bool(p["s_complete"][i])
        add("students_k2", "students", i, "student", "COMPLETE" if done else "PRUNED",
            dev_loss=p["s_dev"][i] if done else p["s_early"][i],
            test_loss=p["s_loss"][i] if done else np.nan,
            blimp_overall=p["s_blimp"][i] if done else np.nan, early=p["s_early"][i],
            ensemble_size=2, epochs_trained=2.0 if done else 1.0)  # fmt: skip
    for j in range(sc.seeds):
        add("repeats", "repeats", j, "teacher", "COMPLETE", seed=10000 + j, source="teachers",
            test_loss=p["rep_t_loss"][j], blimp_overall=p["rep_t_blimp"][j],
            dev_loss=p["rep_t_loss"][j], epochs_trained=2.0)  # fmt: skip
        add("repeats", "repeats", sc.seeds + j, "student", "COMPLETE", seed=10000 + j,
            source="students_k2", test_loss=p["rep_s_loss"][j],
            blimp_overall=p["rep_s_blimp"][j], dev_loss=p["rep_s_loss"][j],
            ensemble_size=2, epochs_trained=2.0)  # fmt: skip
    t = pd.DataFrame(trials)
    t["blimp_pairs"] = 67000.0
    m = pd.DataFrame(metrics)
    m = m.merge(t[["trial_id", "number"]], on="trial_id")
    return Frames(
        sweep=name,
        sweeps=pd.DataFrame(
            [
                {
                    "sweep": name,
                    "status": "COMPLETE",
                    "config_hash": f"hash-{name}",
                    "code_version": "synthetic",
                    "created_at": pd.Timestamp("2025-01-01", tz="UTC"),
                    "finished_at": None,
                    "n_trials": len(t),
                }
            ]
        ),
        trials=t,
        metrics=m,
        evaluations=pd.DataFrame(columns=EVALUATION_COLUMNS),
        ensemble=pd.DataFrame(columns=ENSEMBLE_COLUMNS),
    )


# ---------------------------------------------------------------- consistency (analysis.consistency)


@dataclass(frozen=True)
class SpreadScenario:
    """Two searches' pools of configs for the consistency verdict."""

    name: str
    teachers: int
    students: int
    ratio: float = 1.0
    """Students' config spread over the teachers' (1: the null; 0.5: planted, halved)."""
    asha: bool = False
    """Students pruned ASHA-style: the verdict reads every trial's epoch-1 dev loss."""
    skewed: bool = False
    """Config quality log-normal (a long tail of poor configs) instead of normal."""


@dataclass(frozen=True)
class SpreadOutcome:
    scenario: SpreadScenario
    sweeps: int
    more_consistent: float
    """Fraction of sweeps called "more consistent" (students' spread smaller)."""
    less_consistent: float


def default_spread_scenarios() -> list[SpreadScenario]:
    null = [
        SpreadScenario("same spread 8v8", 8, 8),
        SpreadScenario("same spread 16 teachers v 32 students", 16, 32),
        SpreadScenario("same spread 32 teachers v 16 students", 32, 16),
        SpreadScenario("same spread 32v32", 32, 32),
        SpreadScenario("same spread, skewed configs 16v16", 16, 16, skewed=True),
        SpreadScenario("same spread, ASHA-pruned students 16v16", 16, 16, asha=True),
    ]
    planted = [
        SpreadScenario(f"students' spread halved {n}v{n}", n, n, ratio=0.5) for n in (8, 16, 32, 64)
    ]
    planted += [
        SpreadScenario("students' spread halved, 16 teachers v 48 students", 16, 48, ratio=0.5),
        SpreadScenario("students' spread halved, ASHA 32v32", 32, 32, ratio=0.5, asha=True),
    ]
    return null + planted


def simulate_spread(
    sc: SpreadScenario, sweeps: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pools shaped (sweeps, metrics, configs) for analysis.consistency.decide: students, teachers.

    A config's skill sets its BLiMP and test loss (plus measurement noise); the students sit
    2 pp higher, which must not read as a spread difference. With ASHA the one metric is the
    epoch-1 dev loss of every trial, as the report reads a pruned search.
    """
    S = sweeps

    def quality(n: int, sd: float) -> np.ndarray:
        if not sc.skewed:
            return rng.normal(0, sd, (S, n))
        tail = rng.lognormal(0, 0.75, (S, n))  # sd of lognormal(0, 0.75) is about 0.87
        return -sd * (tail - np.exp(0.75**2 / 2)) / 0.87

    q_t = quality(sc.teachers, CONFIG_SPREAD)
    q_s = quality(sc.students, CONFIG_SPREAD * sc.ratio) + 0.02

    def read(q: np.ndarray) -> np.ndarray:
        if sc.asha:
            return (4.3 - LOSS_PER_BLIMP * q + rng.normal(0, 0.02, q.shape))[:, None, :]
        blimp = 0.6 + q + rng.normal(0, BLIMP_NOISE, q.shape)
        loss = 4.0 - LOSS_PER_BLIMP * q + rng.normal(0, LOSS_NOISE, q.shape)
        return np.stack([blimp, loss], axis=1)

    return read(q_s), read(q_t)


def calibrate_spread(
    scenarios: list[SpreadScenario], sweeps: int = 1000, *, seed: int = 0
) -> list[SpreadOutcome]:
    """The consistency verdict on `sweeps` synthetic sweeps per scenario."""
    from analysis.consistency import decide as decide_spread

    rng = np.random.default_rng(seed)
    out = []
    for sc in scenarios:
        students, teachers = simulate_spread(sc, sweeps, rng)
        code = decide_spread(students, teachers).code  # (S, metrics)
        more = np.any(code == 1, axis=1) & ~np.any(code == -1, axis=1)
        less = np.any(code == -1, axis=1) & ~np.any(code == 1, axis=1)
        out.append(SpreadOutcome(sc, sweeps, float(more.mean()), float(less.mean())))
    return out


def spread_table(outcomes: list[SpreadOutcome]) -> pd.DataFrame:
    rows = []
    for o in outcomes:
        planted = o.scenario.ratio != 1.0
        rows.append(
            {
                "consistency scenario": o.scenario.name,
                "sweeps": o.sweeps,
                "FPR 'more consistent'": None if planted else o.more_consistent,
                "FPR either way": None if planted else o.more_consistent + o.less_consistent,
                "power": o.more_consistent if planted else None,
            }
        )
    return pd.DataFrame(rows)


def spread_frames(sc: SpreadScenario, *, seed: int = 0, name: str = "spread") -> object:
    """One synthetic sweep of a spread scenario as analysis Frames: a `teachers` stage and a
    `students_k2` stage (ensemble of 2), every trial with its held-out metrics."""
    from analysis.load import Frames

    rng = np.random.default_rng(seed)
    students, teachers = simulate_spread(
        SpreadScenario(sc.name, sc.teachers, sc.students, sc.ratio, False, sc.skewed), 1, rng
    )
    trials: list[dict[str, object]] = []
    metrics: list[dict[str, object]] = []
    for stage, kind, role, size, pool in (
        ("teachers", "teachers", "teacher", 0, teachers[0]),
        ("students_k2", "students", "student", 2, students[0]),
    ):
        for number in range(pool.shape[1]):
            tid = len(trials) + 1
            blimp, loss = float(pool[0, number]), float(pool[1, number])
            # ASHA: the worse half (by epoch-1 dev loss) of the students stops at epoch 1
            early = loss + 0.3 + float(rng.normal(0, 0.02))
            pruned = sc.asha and role == "student" and loss > float(np.median(pool[1]))
            trials.append(
                {
                    "sweep": name, "stage": stage, "stage_kind": kind, "trial_id": tid,
                    "number": number, "role": role,
                    "status": "PRUNED" if pruned else "COMPLETE", "seed": number,
                    "ensemble_size": size, "source_stage": None, "source_trial_id": None,
                    "data_tokens": 120000, "dev_loss": early if pruned else loss,
                    "test_loss": np.nan if pruned else loss,
                    "blimp_overall": np.nan if pruned else blimp,
                    "epochs_trained": 1.0 if pruned else 2.0, "blimp_pairs": 67000.0,
                }
            )  # fmt: skip
            metrics.append({"trial_id": tid, "stage": stage, "number": number, "iteration": 1,
                            "name": "dev_loss", "value": early})  # fmt: skip
            if not pruned:
                metrics.append({"trial_id": tid, "stage": stage, "number": number,
                                "iteration": 2, "name": "dev_loss", "value": loss})  # fmt: skip
    t = pd.DataFrame(trials)
    return Frames(
        sweep=name,
        sweeps=pd.DataFrame([{"sweep": name, "status": "COMPLETE", "n_trials": len(t)}]),
        trials=t,
        metrics=pd.DataFrame(metrics),
        evaluations=pd.DataFrame(columns=EVALUATION_COLUMNS),
        ensemble=pd.DataFrame(columns=ENSEMBLE_COLUMNS),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m analysis.calibration", description=__doc__)
    parser.add_argument("--sweeps", type=int, default=1000, help="synthetic sweeps per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--permutations", type=int, default=199)
    args = parser.parse_args(argv)
    outcomes = calibrate(
        default_scenarios(), args.sweeps, seed=args.seed, n_permutations=args.permutations
    )
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table(outcomes).to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="—"))
    print(
        "\nFPR: share of null sweeps called 'student better' on BLiMP or test loss; power: the "
        "same with the effect planted.\n'seed pairs alone': that share had the verdict ignored "
        "the matched-budget comparison of the two searches (config luck reads as an effect)."
    )
    limits = []
    for o in outcomes:
        sc = o.scenario
        equal = sc.teachers == sc.students and not sc.asha and not sc.sequential
        if sc.effect > 0 and sc.kind == "teachers" and equal:
            lim = power_limits(sc)
            limits.append(
                {
                    "planted scenario": sc.name,
                    "the verdict's power": o.student_better,
                    "seed pairs alone, at best": lim.seed_pairs,
                    "the searches' trials alone, at best": lim.pool_means,
                }
            )
    if limits:
        print(
            "\nWhat the two legs of a search-vs-search verdict could find at best (closed form: "
            "one two-sided test at 5%, no Holm, no guard; the pools' with every variance known). "
            "A verdict that needs both legs finds less than the weaker one."
        )
        print(
            pd.DataFrame(limits).to_string(
                index=False, float_format=lambda x: f"{x:.3f}", na_rep="—"
            )
        )
    for label, sequential in (("", False), (" sequential (seeds: auto)", True)):
        null = [
            o for o in outcomes if o.scenario.effect == 0 and o.scenario.sequential == sequential
        ]
        n = sum(o.sweeps for o in null)
        if n:
            print(
                f"\n{n}{label} null sweeps: pooled false-positive rate of 'student better' "
                f"{sum(o.student_better * o.sweeps for o in null) / n:.3f} (target <= 0.05)"
            )
    spread = calibrate_spread(default_spread_scenarios(), args.sweeps, seed=args.seed)
    print()
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(
            spread_table(spread).to_string(
                index=False, float_format=lambda x: f"{x:.3f}", na_rep="—"
            )
        )
    null_spread = [o for o in spread if o.scenario.ratio == 1.0]
    n = sum(o.sweeps for o in null_spread)
    print(
        "\nConsistency (Brown-Forsythe on each search's configs, Holm over BLiMP and test "
        f"loss): {n} null sweeps, pooled false-positive rate of 'more consistent' "
        f"{sum(o.more_consistent * o.sweeps for o in null_spread) / n:.3f} (target <= 0.05); "
        "power: 'more consistent' with the students' config spread halved."
    )


if __name__ == "__main__":
    main()
