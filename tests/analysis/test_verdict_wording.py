"""The wording issue 23 found while reading the verdicts, each pinned where it showed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analysis.load import load_frames
from analysis.report import render_report
from analysis.sections import comparison_section, headline_section, verdict_section
from analysis.stats import probability_of_improvement
from analysis.verdict import verdicts
from tests.analysis.verdict_stores import Plan, write_study


def test_reasons_name_metrics_and_searches_and_print_small_p(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    # a large student lead on the seed pairs, with searches alike: the guard speaks
    write_study(url, Plan(student_blimp=0.64, teacher_blimp=0.60, noise=0.001, pool=3))
    frames = load_frames(url)
    found = verdicts(frames)
    text = " ".join(v.reason or "" for cv in found for v in cv.metrics) + " ".join(
        cv.line for cv in found
    )
    assert "held-out blimp_overall" not in text and "held-out test_loss" not in text
    assert "p = 0.000" not in text and "Holm 0.000" not in text
    cv = next(cv for cv in found if cv.comparison == "students vs teachers")
    assert cv.headline != cv.verdict.upper() and "BETTER" not in cv.line
    # 3 v 3 trials: the matched-budget permutation p cannot go below 0.05, so the guard holds
    blocked = [v for v in cv.metrics if v.guard is not None and v.verdict == "inconclusive"]
    assert blocked and all("the two searches, students and teachers," in v.reason for v in blocked)  # type: ignore[operator]
    assert all("(Holm p < 0.001)" in v.reason for v in blocked)  # type: ignore[operator]


def test_headline_and_labels_read_plainly() -> None:
    from tests.analysis.test_declared_stages import declared_frames

    frames, _ = declared_frames()
    rows = {r["group"]: r for r in headline_section(frames).data["headline"]}
    assert rows["repeats:student:students_k4"]["blimp_overall_best"] is None  # no luckiest seed
    assert rows["teachers"]["blimp_overall_best"] is not None
    page = render_report(frames)
    assert "teacher reference_x4 of teachers" not in page
    assert "data-scale reference reference_x4 (teachers' chosen config)" in page
    # section 2 says each reason once, however many rows share it
    reading = comparison_section(frames).blocks[0].reading
    for reason in {v.reason for cv in verdicts(frames) for v in cv.metrics if v.reason}:
        assert reading.count(reason) == 1


def test_a_one_sided_probability_has_no_point_interval() -> None:
    est = probability_of_improvement(np.arange(5) + 10.0, np.arange(5), higher=True)
    assert est.value == 1.0 and est.low is None and est.high is None and est.note


def test_the_not_alike_warning_says_its_meaning_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    write_study(url, Plan(teacher_epochs=1, student_epochs=2))
    warnings = verdict_section(load_frames(url)).data["warnings"]
    joined = " ".join(warnings)
    assert joined.count("epochs") <= 3  # the config's epochs, not again as trained epochs
    assert "completed trials trained" not in joined
