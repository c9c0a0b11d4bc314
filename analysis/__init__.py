"""Store -> pandas -> statistics -> plotly: the robustness report of a distillation sweep.

    from analysis import load_frames, write_report
    frames = load_frames("sqlite:///demo.db", sweep="demo")   # the DataFrames, for notebooks
    write_report("sqlite:///demo.db", Path("report.html"))   # the self-contained HTML report

Verdicts first (analysis.verdict), calibrated by `python -m analysis.calibration`.
Reads only the store (imports neither torch nor ray); user errors raise sweep.errors.StoreError.
"""

from analysis.headline import (
    Comparison,
    baseline_pairs,
    best_trial,
    headline_table,
    paradigm_differences,
    reported_metrics,
    student_vs_teacher,
    students_beating_best_teacher,
)
from analysis.importance import hyperparameter_importances
from analysis.load import Frames, finished, load_frames, with_contract_columns
from analysis.report import build_sections, render_report, write_report
from analysis.stats import (
    Estimate,
    ExpectedBest,
    TestResult,
    benjamini_hochberg,
    expected_best,
    expected_best_curve,
    holm,
    interquartile_mean,
    iqm_estimate,
    probability_of_improvement,
)
from analysis.verdict import ComparisonVerdict, Verdict, decide, verdicts

__all__ = [
    "Comparison",
    "ComparisonVerdict",
    "Estimate",
    "ExpectedBest",
    "Frames",
    "TestResult",
    "Verdict",
    "baseline_pairs",
    "benjamini_hochberg",
    "best_trial",
    "build_sections",
    "decide",
    "expected_best",
    "expected_best_curve",
    "finished",
    "headline_table",
    "holm",
    "hyperparameter_importances",
    "interquartile_mean",
    "iqm_estimate",
    "load_frames",
    "paradigm_differences",
    "probability_of_improvement",
    "render_report",
    "reported_metrics",
    "student_vs_teacher",
    "students_beating_best_teacher",
    "verdicts",
    "with_contract_columns",
    "write_report",
]
