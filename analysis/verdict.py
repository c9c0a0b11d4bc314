"""The report's verdicts: one line per comparison, "better", "worse" or "inconclusive".

Primary evidence is seed repeats paired by seed: the student's chosen config against the
other side's, re-run with the same seeds and read on held-out metrics (test loss, BLiMP).
Each (comparison, metric) gets a paired t-test and a t-interval of the mean difference;
the tests that can reach significance at their n form one Holm family. A verdict needs:
the Holm-adjusted p below ALPHA; MIN_PAIRS or more pairs; for BLiMP, at least one side
above chance; and, where each side's config was chosen from a search (whatever the pool sizes,
early stopping and epochs), agreement of the matched-budget comparison of the two searches:
seed pairs compare one chosen config per side, so on their own they cannot tell the effect of
distillation from the luck of which config each search happened to find.

`decide` is that procedure on arrays, vectorised over sweeps; analysis.calibration runs it
on synthetic null sweeps to measure its false-positive rate and coverage.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.comparisons import ComparisonPlan, plan_comparisons
from analysis.headline import epochs_mismatch, same_epochs, verdict_metrics
from analysis.load import PERCENT_METRICS, SELECTION_METRIC, Frames, finished
from analysis.power import MAX_SEEDS, detectable_effect, seeds_needed, target_effects
from analysis.sequential import anytime_p, confidence_sequence, sequential_stages
from analysis.stats import (
    PairedEvidence,
    clopper_pearson,
    holm_rows,
    matched_budget_test,
    min_attainable_p,
    paired_evidence,
)

__all__ = [
    "ALPHA",
    "MIN_PAIRS",
    "ComparisonVerdict",
    "Decision",
    "Verdict",
    "blimp_at_chance",
    "decide",
    "every_verdict_decided",
    "headline",
    "pool_asymmetries",
    "status_lines",
    "verdicts",
    "what_would_decide",
]

ALPHA = 0.05
"""Family-wise error rate of the verdicts (Holm)."""
MIN_PAIRS = 3
"""Fewest seed pairs for a verdict: at 2 the paired t rests on 1 degree of freedom and on
normality nobody can check, and every distribution-free test's smallest p is 0.5."""
WORDS = {1: "better", -1: "worse", 0: "inconclusive"}


# ---------------------------------------------------------------- the decision, on arrays


@dataclass(frozen=True)
class Decision:
    """Outcome of `decide`; arrays shaped like the input less its pairs axis."""

    evidence: PairedEvidence
    in_family: npt.NDArray[np.bool_]
    p_holm: npt.NDArray[np.float64]
    code: npt.NDArray[np.int_]
    """+1 student better, -1 worse, 0 inconclusive."""
    blocked: npt.NDArray[np.bool_]
    """Significant on the seed pairs but overruled by the matched-budget comparison."""
    p: npt.NDArray[np.float64] | None = None
    """The p each test entered the family with: the paired t's, or where `sequential`, the
    anytime-valid p of analysis.sequential."""


def decide(
    diffs: npt.ArrayLike,
    *,
    eligible: npt.ArrayLike | None = None,
    guard_p: npt.ArrayLike | None = None,
    guard_favours: npt.ArrayLike | None = None,
    sequential: npt.ArrayLike | None = None,
) -> Decision:
    """The verdict procedure on seed-paired differences shaped (..., family, pairs).

    `diffs` are oriented so that positive means the student is better (NaN: no pair).
    `eligible` (..., family) removes tests from the family (e.g. BLiMP at chance).
    `guard_p` / `guard_favours` (..., family): the matched-budget permutation p and the
    sign of its difference (positive favours the student), NaN where the two pools are
    like for like; a verdict against the guard's direction, or with guard_p >= ALPHA,
    becomes inconclusive.
    `sequential` (..., family): tests whose pairs came from a seeds:auto stage, whose number
    of pairs was chosen by looking; they enter the family with their anytime-valid p.
    """
    ev = paired_evidence(diffs)
    p = ev.p
    if sequential is not None:
        p = np.where(np.asarray(sequential, bool) & ~np.isnan(ev.p), anytime_p(diffs), ev.p)
    ok = np.ones(ev.n.shape, bool) if eligible is None else np.asarray(eligible, bool)
    in_family = (ev.n >= MIN_PAIRS) & ~np.isnan(p) & ok
    p_holm = holm_rows(np.where(in_family, p, np.nan))
    significant = in_family & (p_holm < ALPHA)
    direction = np.sign(np.nan_to_num(ev.mean)).astype(int)
    code = np.where(significant, direction, 0)
    blocked = np.zeros(code.shape, bool)
    if guard_p is not None:
        gp = np.asarray(guard_p, dtype=float)
        favours = np.sign(np.nan_to_num(np.asarray(guard_favours, dtype=float))).astype(int)
        agrees = (gp < ALPHA) & (favours == direction)
        blocked = significant & ~np.isnan(gp) & ~agrees
        code = np.where(blocked, 0, code)
    return Decision(ev, in_family, p_holm, code, blocked, p)


# ---------------------------------------------------------------- the comparisons of a sweep


@dataclass(frozen=True)
class Verdict:
    """One comparison on one metric."""

    comparison: str
    label: str
    kind: str
    metric: str
    verdict: str
    n_pairs: int
    difference: float | None
    """Mean of student minus other over seed pairs, in the metric's units."""
    low: float | None
    high: float | None
    p: float | None
    p_holm: float | None
    in_family: bool
    p_student_better: float | None
    """Fraction of seed pairs the student wins, with its Clopper-Pearson 95% interval."""
    p_student_better_low: float | None
    p_student_better_high: float | None
    min_p_rank_test: float | None
    """Smallest p a Wilcoxon / sign-flip test could reach on these pairs."""
    reason: str | None
    pairing: str
    guard: dict[str, Any] | None = None
    sd: float | None = None
    """sd of the paired differences (the metric's units)."""
    alpha_first: float | None = None
    """The Holm level this test faces first: ALPHA / the family's size."""
    detectable: float | None = None
    """Smallest true difference the seed-pair test finds with 80% power at these pairs."""
    target: float | None = None
    """report.target_effect for this metric (the store's units)."""
    seeds_needed: int | None = None
    """Seed pairs that find `target` with 80% power (None: unknown, or over MAX_SEEDS)."""
    sequential: bool = False
    """Judged by the anytime-valid test (a seeds:auto stage chose how many pairs): p is its p,
    low/high its confidence sequence (analysis.sequential)."""


@dataclass(frozen=True)
class ComparisonVerdict:
    """The one line per comparison that opens the report."""

    comparison: str
    label: str
    kind: str
    verdict: str
    line: str
    metrics: list[Verdict] = field(default_factory=list)
    headline: str = ""
    """The verdict in words that name the metric ("better on BLiMP; test loss inconclusive")."""


def _paired(plan: ComparisonPlan, metric: str) -> pd.DataFrame:
    """student, other per pair (seed, or the student trial a baseline re-ran)."""
    if plan.pairing == "seed":
        a = plan.student.groupby("seed")[metric].mean()
        b = plan.other.groupby("seed")[metric].mean()
    else:
        a = plan.student.set_index("trial_id")[metric]
        b = plan.other.groupby("source_trial_id")[metric].mean()
    both = pd.concat([a.rename("student"), b.rename("other")], axis=1, join="inner")
    both = both.apply(pd.to_numeric, errors="coerce")
    return both.dropna()


def blimp_at_chance(accuracy: npt.ArrayLike, pairs: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether a BLiMP accuracy on `pairs` scored pairs lies inside the 95% Clopper-Pearson
    interval of chance (50%): such a model is not above chance."""
    acc, n = np.asarray(accuracy, float), np.asarray(pairs, float)
    low, high = clopper_pearson(np.round(acc * n), n)
    return np.asarray((low <= 0.5) & (high >= 0.5), bool)


def _at_chance(rows: pd.DataFrame, value: float) -> tuple[bool, int]:
    pairs = pd.to_numeric(rows.get("blimp_pairs"), errors="coerce").dropna()
    if pairs.empty or not np.isfinite(value):
        return False, 0
    n = int(pairs.median())
    return bool(blimp_at_chance(value, n)), n


def pool_asymmetries(frames: Frames, a: str, b: str) -> list[str]:
    """How two searches differ (trial count, early stopping, epochs); empty if like for like."""
    out = []
    ca, cb = frames.stage_settings(a), frames.stage_settings(b)
    if None not in (ca["scheduler"], cb["scheduler"]) and ca["scheduler"] != cb["scheduler"]:
        out.append(
            f"the sweep config gives {a} the scheduler {ca['scheduler']!r} and {b} "
            f"{cb['scheduler']!r} (early stopping differs)"
        )
    for what in ("trials", "epochs"):
        if ca[what] is not None and cb[what] is not None and ca[what] != cb[what]:
            out.append(f"the sweep config gives {a} {ca[what]} {what} and {b} {cb[what]}")
    pa, pb = frames.stage(a), frames.stage(b)
    ran_a = pa[pa["status"].isin(["COMPLETE", "PRUNED"])]
    ran_b = pb[pb["status"].isin(["COMPLETE", "PRUNED"])]
    if len(ran_a) != len(ran_b) and (len(ran_a), len(ran_b)) != (ca["trials"], cb["trials"]):
        out.append(f"{a} ran {len(ran_a)} trials and {b} {len(ran_b)}")  # not what the config said
    pr_a, pr_b = int((pa["status"] == "PRUNED").sum()), int((pb["status"] == "PRUNED").sum())
    if (pr_a > 0) != (pr_b > 0):
        out.append(
            f"early stopping differs: {pr_a} trial(s) of {a} were pruned and {pr_b} of {b} "
            "(survivors against unselected trials)"
        )
    ea = sorted({int(e) for e in finished(pa)["epochs_trained"].dropna()})
    eb = sorted({int(e) for e in finished(pb)["epochs_trained"].dropna()})
    if ea and eb and ea != eb and (ea, eb) != ([ca["epochs"]], [cb["epochs"]]):
        out.append(f"completed trials trained {ea} epoch(s) in {a} and {eb} in {b}")
    return out


def _guard_values(
    frames: Frames, a: str, b: str, metric: str, higher: bool
) -> tuple[np.ndarray, np.ndarray, str, bool]:
    """The two pools' values for the matched-budget comparison and what they are.

    Pools with no epoch count in common give no values: the guard then refuses to vouch.
    """
    pa, pb = frames.stage(a), frames.stage(b)
    pruned = (pa["status"] == "PRUNED").any() or (pb["status"] == "PRUNED").any()
    mismatch = epochs_mismatch(pa, pb, (a, b))
    if mismatch is not None:
        return np.array([]), np.array([]), mismatch, higher
    if not pruned:
        sa, sb, epochs = same_epochs(pa, pb)
        basis = f"held-out {METRIC_NAMES.get(metric, metric)} of completed trials" + (
            f" that trained {epochs} epoch(s)" if epochs is not None else ""
        )
        va = pd.to_numeric(sa[metric], errors="coerce").dropna().to_numpy(float)
        vb = pd.to_numeric(sb[metric], errors="coerce").dropna().to_numpy(float)
        return va, vb, basis, higher
    # a pruned pool: every trial that ran, at the last epoch all of them reached
    ran = pd.concat([pa, pb])
    ran = ran[ran["status"].isin(["COMPLETE", "PRUNED"])]
    epoch = pd.to_numeric(ran["epochs_trained"], errors="coerce").min()
    m = frames.metrics
    if m.empty or not np.isfinite(epoch):
        return np.array([]), np.array([]), "no per-epoch record", higher
    at = m[(m["name"] == SELECTION_METRIC) & (m["iteration"] == epoch)].set_index("trial_id")
    va = at["value"].reindex(pa.loc[pa["status"].isin(["COMPLETE", "PRUNED"]), "trial_id"])
    vb = at["value"].reindex(pb.loc[pb["status"].isin(["COMPLETE", "PRUNED"]), "trial_id"])
    basis = f"dev loss of every trial (pruned ones too) at epoch {int(epoch)}, which all reached"
    return va.dropna().to_numpy(float), vb.dropna().to_numpy(float), basis, False


def verdicts(frames: Frames) -> list[ComparisonVerdict]:
    """One ComparisonVerdict per comparison the stages allow, with a Verdict per metric."""
    metrics = verdict_metrics(frames)
    plans = plan_comparisons(frames)
    cells = [(plan, m) for plan in plans for m in metrics]
    if not cells:
        return []
    width = max([1, *(len(_paired(p, m)) for p, m in cells if not p.missing)])
    diffs = np.full((len(cells), width), np.nan)
    eligible = np.ones(len(cells), bool)
    guard_p = np.full(len(cells), np.nan)
    guard_favours = np.full(len(cells), np.nan)
    auto = sequential_stages(frames)
    sequential = np.array(
        [bool(auto & {*p.student["stage"], *p.other["stage"]}) for p, _ in cells], bool
    )
    notes: dict[int, str] = {}
    guards: dict[int, dict[str, Any]] = {}
    pairs: dict[int, pd.DataFrame] = {}
    for i, (plan, metric) in enumerate(cells):
        higher = metrics[metric]
        if plan.missing:
            continue
        both = _paired(plan, metric)
        pairs[i] = both
        sign = 1.0 if higher else -1.0
        diffs[i, : len(both)] = sign * (both["student"] - both["other"]).to_numpy(float)
        if metric == "blimp_overall" and len(both):
            s_chance, n = _at_chance(plan.student, float(both["student"].mean()))
            o_chance, _ = _at_chance(plan.other, float(both["other"].mean()))
            if s_chance and o_chance:
                eligible[i] = False
                notes[i] = (
                    f"both sides' BLiMP ({100 * both['student'].mean():.1f}% and "
                    f"{100 * both['other'].mean():.1f}%) lie inside the 95% binomial interval "
                    f"of chance (50%) on {n} scored pairs: neither model is above chance"
                )
        if plan.pools is not None:
            # one chosen config per side: seed pairs alone cannot tell distillation from config
            # luck, so the two searches must also differ at matched budget
            asym = pool_asymmetries(frames, *plan.pools)
            va, vb, basis, g_higher = _guard_values(frames, *plan.pools, metric, higher)
            guard: dict[str, Any] = {
                "pools": list(plan.pools),
                "asymmetries": asym,
                "basis": basis,
                "k": 0,
                "difference": None,
                "p": None,
                "metric": metric if "held-out" in basis else SELECTION_METRIC,
            }
            guard_p[i], guard_favours[i] = 1.0, 0.0
            guard["refused"] = epochs_mismatch(
                frames.stage(plan.pools[0]), frames.stage(plan.pools[1]), plan.pools
            )
            if va.size and vb.size:
                diff, p, k = matched_budget_test(va, vb, higher=g_higher)
                guard_p[i] = float(p)
                guard_favours[i] = (1.0 if g_higher else -1.0) * float(diff)
                guard.update(k=k, difference=float(diff), p=float(p))
            guards[i] = guard
    decision = decide(
        diffs,
        eligible=eligible,
        guard_p=guard_p,
        guard_favours=guard_favours,
        sequential=sequential,
    )
    ev = decision.evidence
    targets = target_effects(frames.config)
    family_size = int(decision.in_family.sum())
    with warnings.catch_warnings():  # rows of fewer than 2 pairs have no sd
        warnings.simplefilter("ignore", RuntimeWarning)
        sds = np.nanstd(diffs, axis=1, ddof=1)
    out: list[ComparisonVerdict] = []
    per_plan: dict[str, list[Verdict]] = {}
    for i, (plan, metric) in enumerate(cells):
        higher = metrics[metric]
        sign = 1.0 if higher else -1.0
        n = int(ev.n[i])
        code = int(decision.code[i])
        reason = _reason(plan, decision, i, n, notes.get(i), guards.get(i))
        low, high = _f(ev.low[i]), _f(ev.high[i])
        if sequential[i]:  # the interval that holds at the look where the rounds stopped
            low, high = confidence_sequence(diffs[i]) or (None, None)
        if low is not None and high is not None and sign < 0:
            low, high = -high, -low
        mean = _f(ev.mean[i])
        sd = _f(sds[i]) if n >= 2 else None
        alpha_first = ALPHA / max(family_size + (0 if decision.in_family[i] else 1), 1)
        target = targets.get(metric)
        per_plan.setdefault(plan.key, []).append(
            Verdict(
                comparison=plan.key,
                label=plan.label,
                kind=plan.kind.name,
                metric=metric,
                verdict=WORDS[code],
                n_pairs=n,
                difference=None if mean is None else sign * mean,
                low=low,
                high=high,
                p=_f(decision.p[i]) if decision.p is not None else _f(ev.p[i]),
                p_holm=_f(decision.p_holm[i]),
                in_family=bool(decision.in_family[i]),
                p_student_better=_f(ev.p_win[i]),
                p_student_better_low=_f(ev.p_win_low[i]) if n else None,
                p_student_better_high=_f(ev.p_win_high[i]) if n else None,
                min_p_rank_test=min_attainable_p("Wilcoxon signed-rank", n) if n else None,
                reason=reason,
                pairing=plan.pairing,
                guard=guards.get(i),
                sd=sd,
                alpha_first=alpha_first,
                detectable=None
                if sd is None
                else detectable_effect(sd, n, alpha_first, sequential=bool(sequential[i])),
                target=target,
                seeds_needed=None
                if sd is None or target is None
                else seeds_needed(
                    sd, target, alpha_first, at_least=MIN_PAIRS, sequential=bool(sequential[i])
                ),
                sequential=bool(sequential[i]),
            )
        )
    family = family_size
    for plan in plans:
        vs = per_plan[plan.key]
        words = {v.verdict for v in vs}
        if "better" in words and "worse" in words:
            word = "inconclusive"
        elif "better" in words:
            word = "better"
        elif "worse" in words:
            word = "worse"
        else:
            word = "inconclusive"
        out.append(
            ComparisonVerdict(
                plan.key,
                plan.label,
                plan.kind.name,
                word,
                _line(plan, word, vs, family),
                vs,
                headline(word, vs),
            )
        )
    return out


def headline(word: str, vs: list[Verdict]) -> str:
    """A comparison's verdict in words that say which metric decided it."""
    decided = [v for v in vs if v.verdict != "inconclusive"]
    if not decided:
        return "inconclusive"
    if word == "inconclusive":  # the metrics disagree
        return "; ".join(f"{v.verdict} on {METRIC_NAMES.get(v.metric, v.metric)}" for v in decided)
    undecided = [METRIC_NAMES.get(v.metric, v.metric) for v in vs if v.verdict == "inconclusive"]
    on = " and ".join(METRIC_NAMES.get(v.metric, v.metric) for v in decided)
    return f"{word} on {on}" + (f"; {' and '.join(undecided)} inconclusive" if undecided else "")


def every_verdict_decided(frames: Frames) -> bool:
    """Whether every comparison of the study has a verdict ("better" or "worse" on some metric,
    none of them contradicting another): what a study growing its seeds asks after each round."""
    found = verdicts(frames)
    return bool(found) and all(cv.verdict != "inconclusive" for cv in found)


def _f(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _reason(
    plan: ComparisonPlan,
    decision: Decision,
    i: int,
    n: int,
    note: str | None,
    guard: dict[str, Any] | None,
) -> str | None:
    if decision.code[i] != 0:
        return None
    if plan.missing:
        return plan.missing
    if n == 0:
        return "no pair has this metric on both sides"
    if n < MIN_PAIRS:
        floor = min_attainable_p("Wilcoxon signed-rank", n)
        return (
            f"{n} pair(s): too few for any test to reach significance (a verdict needs "
            f"{MIN_PAIRS}+ pairs; the smallest p a Wilcoxon or sign-flip test can reach at "
            f"{n} pairs is {floor:.2f})"
        )
    if note:
        return note
    ev = decision.evidence
    if np.isnan(ev.p[i]):
        return "every pair differs by the same amount: no variance to test"
    if decision.blocked[i] and guard is not None and guard.get("refused"):
        return (
            f"the seed pairs differ (Holm p {_p(decision.p_holm[i])}), but {guard['refused']}: "
            "nothing vouches that the difference is distillation rather than the luck of the "
            "chosen configs or the unequal training, so no verdict is drawn"
        )
    if decision.blocked[i] and guard is not None:
        gp = guard["p"]
        unequal = (
            " (and they were not searched alike: " + "; ".join(guard["asymmetries"]) + ")"
            if guard["asymmetries"]
            else ""
        )
        return (
            f"the seed pairs differ (Holm p {_p(decision.p_holm[i])}), but they compare one "
            f"chosen config per side{unequal}; at matched budget (expected best of k = "
            f"{guard['k']} trials, {guard['basis']}) the two searches, "
            f"{guard['pools'][0]} and {guard['pools'][1]}, "
            + ("do not differ" if gp is None or gp >= ALPHA else "point the other way")
            + (f" (permutation p {_p(gp)})" if gp is not None else "")
            + ", so the difference may be the luck of the chosen configs, not distillation"
        )
    return (
        f"p {_p((ev.p if decision.p is None else decision.p)[i])}, Holm-adjusted over the "
        f"{int(decision.in_family.sum())} tests in "
        f"the family {decision.p_holm[i]:.3f} ≥ {ALPHA:g}"
    )


def _p(p: float) -> str:
    """'= 0.064', or '< 0.001' where three decimals would print 0.000."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _fmt(metric: str, value: float | None, *, unit: bool = True) -> str:
    """A signed difference: BLiMP in percentage points, a loss in nats per token."""
    if value is None:
        return "—"
    if metric in PERCENT_METRICS:
        return f"{100 * value:+.2f}" + (" pp" if unit else "")
    return f"{value:+.4f}" + (" nats/token" if unit else "")


METRIC_NAMES = {
    "blimp_overall": "BLiMP",
    "test_loss": "test loss",
    "dev_loss": "dev loss",
    "glue_average": "GLUE average",
    "zeroshot_average": "zero-shot average",
}


def _line(plan: ComparisonPlan, word: str, vs: list[Verdict], family: int) -> str:
    parts = []
    for v in vs:
        name = METRIC_NAMES.get(v.metric, v.metric)
        if v.difference is None:
            parts.append(f"{name} {v.verdict}: {v.reason}")
            continue
        text = f"{name} {v.verdict}: {_fmt(v.metric, v.difference)}"
        if v.low is not None and v.high is not None:
            unadjusted = v.verdict == "inconclusive" and (v.low > 0 or v.high < 0)
            ci = "anytime-valid 95% CI" if v.sequential else "95% CI"
            text += (
                f" ({ci} {_fmt(v.metric, v.low, unit=False)} to "
                f"{_fmt(v.metric, v.high, unit=False)}"
                + (", unadjusted for the family" if unadjusted else "")
                + ")"
            )
        if v.p is not None:
            test = "anytime-valid sequential p" if v.sequential else "paired t p"
            text += f", {test} {_p(v.p)}" + (
                f", Holm p {_p(v.p_holm)}" if v.p_holm is not None else ""
            )
        text += f", {v.n_pairs} {'seed' if v.pairing == 'seed' else 'config'} pair(s)"
        if v.reason:
            text += f"; why: {v.reason}"
        parts.append(text)
    return f"{plan.label}: {headline(word, vs)}. Student minus other, " + ". ".join(parts) + "."


def what_would_decide(metric: str, cell: dict[str, Any]) -> str:
    """The smallest detectable difference now and the seed pairs the target effect needs."""
    target = cell.get("target")
    target_text = _fmt(metric, target).lstrip("+") if target is not None else "the target"
    if cell.get("detectable") is None:
        return "detectable: needs 2+ pairs with variance"
    text = f"detectable now: {_fmt(metric, cell['detectable']).lstrip('+')}"
    needed = cell.get("seeds_needed")
    if target is not None:
        text += (
            f"; {target_text} needs {needed} pairs"
            if needed is not None
            else f"; {target_text} needs more than {MAX_SEEDS} pairs"
        )
    return text


def status_lines(frames: Frames) -> list[str]:
    """One line per comparison for `sweep status`: its verdict and what would decide it."""
    lines = []
    for cv in verdicts(frames):
        unit = "seed" if cv.metrics and cv.metrics[0].pairing == "seed" else "config"
        pairs = max((v.n_pairs for v in cv.metrics), default=0)
        parts = [
            f"{METRIC_NAMES.get(v.metric, v.metric)} {_fmt(v.metric, v.difference)}, "
            + what_would_decide(v.metric, asdict(v))
            for v in cv.metrics
            if v.difference is not None
        ]
        lines.append(
            f"{cv.comparison}: {cv.headline} ({pairs} {unit} pairs)"
            + ("; " + "; ".join(parts) if parts else "")
        )
    return lines
