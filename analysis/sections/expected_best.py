"""Section 3: expected best score against number of trials (matched budget)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis import figures
from analysis.headline import epochs_mismatch, reported_metrics, same_epochs
from analysis.load import Frames, finished
from analysis.sections._format import Block, Section, fmt, fmt_diff, fmt_p, metric_label
from analysis.stats import MIN_FOR_CI, ExpectedBest, expected_best_curve, matched_budget_test


def expected_best_section(frames: Frames) -> Section:
    section = Section(
        "expected_best", "3. Expected best score against number of trials (matched budget)"
    )
    metrics = reported_metrics(frames)
    teachers, students = frames.stages("teachers"), frames.stages("students")
    t_stage = teachers[0] if teachers else None
    curves: dict[str, dict[str, ExpectedBest]] = {m: {} for m in metrics}
    matched: dict[str, dict[str, Any]] = {}
    sentences = []
    for s_stage in students:
        s_pool, t_pool, epochs = same_epochs(
            frames.stage(s_stage), frames.stage(t_stage) if t_stage else frames.trials.iloc[0:0]
        )
        mismatch = (
            epochs_mismatch(frames.stage(s_stage), frames.stage(t_stage), (s_stage, t_stage))
            if t_stage
            else None
        )
        if mismatch is not None and t_stage is not None:
            for m, higher in metrics.items():
                for stage in (s_stage, t_stage):
                    values = pd.to_numeric(finished(frames.stage(stage))[m], errors="coerce")
                    curves[m][stage] = expected_best_curve(values.dropna(), higher=higher)
            sentences.append(
                f"{s_stage} against {t_stage}: {mismatch}. Each search's curve is drawn alone; "
                "they are not compared."
            )
            continue
        for m, higher in metrics.items():
            sv = pd.to_numeric(s_pool[m], errors="coerce").dropna().to_numpy(float)
            tv = pd.to_numeric(t_pool[m], errors="coerce").dropna().to_numpy(float)
            curves[m][s_stage] = expected_best_curve(sv, higher=higher)
            if t_stage is not None:
                curves[m][t_stage] = expected_best_curve(tv, higher=higher)
            if sv.size == 0 or tv.size == 0:
                continue
            diff, p, k = matched_budget_test(sv, tv, higher=higher)
            sign = 1.0 if higher else -1.0
            lead = sign * float(diff)  # positive: the students are ahead
            t_curve = curves[m][t_stage]  # type: ignore[index]
            half = math.ceil(t_curve.n / 2)
            gain = sign * (t_curve.mean[-1] - t_curve.mean[half - 1]) if t_curve.n >= 2 else None
            matched[f"{s_stage}:{m}"] = {
                "students": s_stage,
                "teachers": t_stage,
                "metric": m,
                "k": k,
                "epochs": epochs,
                "student": float(expected_best_curve(sv, higher=higher).mean[k - 1]),
                "teacher": float(t_curve.mean[k - 1]),
                "difference": float(diff),
                "student_ahead": lead > 0,
                "p": float(p),
                "teacher_gain_doubling": gain,
            }
            label = metric_label(m)
            sentence = (
                f"{s_stage}, {label}: at an equal budget of k = {k} trials"
                + (f" (trials that trained {epochs} epochs)" if epochs is not None else "")
                + f", the expected best is {fmt(m, matched[f'{s_stage}:{m}']['student'])} for "
                f"students and {fmt(m, matched[f'{s_stage}:{m}']['teacher'])} for teachers: "
                + (
                    f"the students lead by {fmt_diff(m, abs(float(diff)))}"
                    if lead > 0
                    else f"the students trail by {fmt_diff(m, abs(float(diff)))}"
                )
                + f" (permutation p = {fmt_p(float(p))})."
            )
            if gain is not None:
                if lead > 0:
                    sentence += (
                        f" Doubling the teacher budget from {half} to {t_curve.n} trials improves "
                        f"the teachers' expected best by {fmt_diff(m, abs(gain))}, "
                        + (
                            "less than the students' lead, so better-tuned teachers would not "
                            "be expected to close it."
                            if abs(gain) < lead
                            else "at least the students' lead, so better-tuned teachers might "
                            "close it."
                        )
                    )
                else:
                    sentence += (
                        " The students are behind at equal budget, so more teacher tuning could "
                        "only widen the gap; the question is whether more student trials close it."
                    )
            sentences.append(sentence)
    section.data["expected_best"] = curves
    section.data["matched_budget"] = matched
    if not sentences:
        section.blocks.append(
            Block(
                "The curves need completed trials in a teachers and a students stage; whether "
                "better-tuned teachers would close the gap cannot be judged."
            )
        )
        if any(c.n for per in curves.values() for c in per.values()):
            section.blocks[-1].figure = figures.expected_best_figure(curves)
        return section
    if any(c.n < MIN_FOR_CI for per in curves.values() for c in per.values()):
        sentences.append(
            f"Bands need {MIN_FOR_CI}+ trials per sweep, so whether better-tuned teachers would "
            "close the gap cannot be judged yet for the thinner sweeps."
        )
    section.blocks.append(Block(" ".join(sentences), figure=figures.expected_best_figure(curves)))
    return section
