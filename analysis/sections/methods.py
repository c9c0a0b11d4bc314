"""Section 7: methods, and how the stored sweep scored BLiMP."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from analysis.data_pipeline import data_pipeline_text
from analysis.headline import reported_metrics
from analysis.load import SELECTION_METRIC, Frames
from analysis.sections._format import Block, Section
from analysis.sections.sensitivity import SMALL_SAMPLE
from analysis.stats import CONFIDENCE, MIN_FOR_CI, MIN_FOR_TEST, N_RESAMPLES
from analysis.verdict import ALPHA, MIN_PAIRS
from sweep.store.read import SWEEP_COLUMNS


def methods_section(frames: Frames) -> Section:
    info = frames.info
    trials = frames.trials
    seeds = sorted({int(s) for s in trials["seed"].dropna()}) if "seed" in trials else []
    section_sweep = {k: info.get(k) for k in SWEEP_COLUMNS}  # the store's sweep row, as read
    scoring = blimp_scoring(frames.config)
    facts = [
        ("sweep", html.escape(frames.sweep)),
        ("status", html.escape(str(info.get("status", "—")))),
        (
            "config hash",
            f"<code>{html.escape(str(info.get('config_hash', '—')))}</code>: sha256 of the "
            "resolved sweep.yaml less where it runs (storage, Ray address, paths, trackers) "
            "and less stage sizes (trials, seeds, top_n, which may grow)",
        ),
        ("code version", f"<code>{html.escape(str(info.get('code_version', '—')))}</code>"),
        (
            "created / finished",
            f"{html.escape(str(info.get('created_at', '—')))} / {html.escape(str(info.get('finished_at', '—')))}",
        ),
        ("trials in the store", str(len(trials))),
        ("seeds used", html.escape(", ".join(str(s) for s in seeds) or "—")),
        ("BLiMP scoring", html.escape(scoring["blimp_convention_text"])),
        ("checkpoint handed on", html.escape(scoring["checkpoint_text"])),
        ("data pipeline", html.escape(data_pipeline_text(frames.config))),
        ("report written", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
    ]
    facts_html = "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    # the Optuna studies this sweep searched: one per teachers or students stage it declared
    searched_stages = (
        list(
            dict.fromkeys(trials.loc[trials["stage_kind"].isin(["teachers", "students"]), "stage"])
        )
        if {"stage", "stage_kind"} <= set(trials.columns)
        else []
    )
    searched = (
        ", ".join(
            f"<code>{html.escape(frames.sweep)}/{html.escape(str(s))}</code>"
            for s in searched_stages
        )
        or "none in this store"
    )
    methods = f"""
<ul>
<li><b>Which split chose what.</b> The dev split (dev loss, nats per token) chose everything:
it is the Optuna objective, the ASHA early-stopping signal, the ensemble's selection metric (unless
the sweep set it to BLiMP) and the config each repeat re-runs. Every reported number, comparison and
curve uses what no choice saw: the held-out test loss (nats per token) and BLiMP (%).
{"<b>This store has no test loss, so its loss numbers are dev loss and optimistic.</b>" if SELECTION_METRIC in reported_metrics(frames) else ""}</li>
<li><b>Verdicts.</b> Each comparison pairs seed repeats by seed (the same seeds on both sides), and
the alpha=1 baselines by the student trial they re-ran. Per metric: a paired t-test (two-sided)
with a 95% t-interval of the mean difference, and P(student better on a seed) with an exact
Clopper-Pearson interval. The tests that can reach significance ({MIN_PAIRS}+ pairs with variance,
BLiMP above the 95% binomial interval of chance on at least one side) form one family, Holm-corrected
at {ALPHA:g}; the rest are descriptive. "better"/"worse" needs the Holm-adjusted p below {ALPHA:g};
where the two configs came out of unequal searches (trial counts, early stopping, epochs) it also
needs the matched-budget comparison of the whole pools (expected best at equal k, permutation test) to
agree. <code>python -m analysis.calibration</code> measures this procedure's false-positive rate and
interval coverage on synthetic null sweeps.</li>
<li><b>BLiMP scoring.</b> {html.escape(scoring["blimp_convention_text"])}. A pair counts as
correct when the good sentence's summed log-probability is at least the bad one's. The model scored
(and handed to the ensemble and GLUE) is {html.escape(scoring["checkpoint_text"])}.</li>
<li><b>Which trials count.</b> Only COMPLETE trials: a pruned trial was stopped early and a failed
one has no final score. Pruned and failed counts are shown beside each group.</li>
<li><b>Groups.</b> teachers and students are the two Optuna sweeps; matched baselines re-run a
student config with alpha = 1 (no distillation); repeats re-run the best teacher and the best
student config with new seeds. The repeated original is not counted among its repeats, because
it was selected as the best and would favour its side.</li>
<li><b>Headline "chosen on dev"</b>: the held-out value of the trial that dev loss picks, never the
best held-out value (which would select on the test split).</li>
<li><b>Interquartile mean (IQM)</b>: the mean of the middle 50% of values (scipy.stats.trim_mean,
0.25 cut), robust to one diverged or lucky trial. Its 95% interval is a percentile bootstrap
(scipy.stats.bootstrap, {N_RESAMPLES} resamples, fixed seed); fewer than {MIN_FOR_CI} values get no interval.</li>
<li><b>Probability of improvement</b> P(student better): the chance that a random student
value beats a random teacher value (higher BLiMP, lower loss), ties counting half (equal to Mann-Whitney U / (n·m)); 0.5 is no
difference. Interval: bootstrap resampling each side independently.</li>
<li><b>Descriptive tests</b>: Welch's t-test (unequal variances) and the Mann-Whitney U test on the
repeat seeds, and the paired t and Wilcoxon signed-rank tests of each student against its matched
baseline (a student with several baselines is compared with their mean). All are two-sided; each
side needs {MIN_FOR_TEST}+ values. Effect sizes: Hedges' g (standardised mean difference),
P(student better) for Mann-Whitney (for a loss, the chance the student's is lower), d_z (mean / sd of the paired differences). The p-values are
descriptive: each is listed with the smallest p it could reach at its n (Mann-Whitney on 2 vs 2
values: 0.33; Wilcoxon on 4 pairs: 0.125), so a large p there is not evidence of no effect.</li>
<li><b>Expected best score after k trials</b> (Dodge et al. 2019, "Show Your Work"): the mean of the
best of k trials drawn with replacement from a sweep's completed trials, exactly from the order
statistics. The band is a pointwise {CONFIDENCE:.0%} percentile bootstrap over the trials; near k = n it
is optimistic, since no resample can exceed the best value seen. If the teacher curve is still rising
at its full budget, the teachers may be under-tuned; if the student curve lies above it at every
equal budget, the gap is not a tuning artefact.</li>
<li><b>Fraction beating the best teacher</b>: completed student trials better than the single best
completed teacher, with a Wilson 95% interval (scipy.stats.binomtest).</li>
<li><b>Hyperparameter importance</b>: Optuna's PED-ANOVA and fANOVA on the stored studies
({searched}),
for the objective, dev loss; each study's importances sum to 1. On fewer than {SMALL_SAMPLE} trials they
are hints only.</li>
<li><b>Per paradigm</b>: the best student and best teacher are chosen by dev loss (not BLiMP, so the
paradigms do not pick the models they compare). Each difference is tested with Fisher's exact
test on correct/incorrect counts (conservative: the store keeps accuracies, not per-pair outcomes,
so a paired McNemar test is out of reach), and Benjamini-Hochberg controls the false discovery rate
at {ALPHA:g} across the paradigms and, separately, across the phenomenon groups (● in the heatmap).</li>
<li><b>Rank correlation</b>: Spearman's ρ between a hyperparameter and BLiMP among completed student trials.</li>
</ul>"""
    return Section(
        "methods",
        "7. Methods",
        [Block("", table=Markup(facts_html + methods))],
        {
            "sweep": section_sweep,
            "seeds": seeds,
            "blimp_convention": scoring["blimp_convention"],
            "checkpoint": scoring["checkpoint"],
        },
    )


def blimp_scoring(config: dict[str, Any]) -> dict[str, str]:
    """How the stored sweep scored BLiMP and which epoch's model it handed on.

    A config without `data.blimp_convention` predates the setting: it was scored as no_space.
    """
    data = config.get("data") if isinstance(config, dict) else None
    training = config.get("training") if isinstance(config, dict) else None
    convention = str((data or {}).get("blimp_convention", "no_space"))
    checkpoint = str((training or {}).get("checkpoint", "last"))
    texts = {
        "lm_eval": (
            "lm_eval: lm-evaluation-harness's convention, the sum of the log-probabilities of the "
            'tokens of " " + sentence after the BOS token (comparable with lm-eval and the BabyLM '
            "leaderboard)"
        ),
        "no_space": (
            "no_space: the sum of the log-probabilities of the tokens of the sentence after the "
            "BOS token, without lm-eval's leading space (not directly comparable with lm-eval)"
        ),
    }
    return {
        "blimp_convention": convention,
        "blimp_convention_text": texts.get(convention, convention),
        "checkpoint": checkpoint,
        "checkpoint_text": (
            "the epoch with the best dev loss (checkpoint: best)"
            if checkpoint == "best"
            and (training or {}).get("checkpoint_metric", "dev_loss") == "dev_loss"
            else "the epoch with the best dev loss for teachers and the lowest distillation "
            "objective on dev (alpha CE + (1 - alpha) T^2 KL, the reference's eval loss) for "
            "students (checkpoint: best, checkpoint_metric: dev_distillation_loss)"
            if checkpoint == "best"
            else "the last epoch's (checkpoint: last)"
        ),
    }
