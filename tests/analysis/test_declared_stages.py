"""Frames with the contract columns of declared stages (the read_trials contract in ARCHITECTURE.md): several students stages,
alpha=1 baselines and a data-scale reference among the repeats, all paired by seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.load import Frames
from analysis.report import render_report
from analysis.verdict import verdicts
from sweep.store.read import ENSEMBLE_COLUMNS, EVALUATION_COLUMNS
from tests.analysis.test_report_renders import chromium as chromium
from tests.analysis.test_report_renders import render

SEEDS = [10000 + i for i in range(5)]


def declared_frames() -> tuple[Frames, dict[tuple[str, str, str], list[float]]]:
    rng = np.random.default_rng(11)
    rows: list[dict[str, Any]] = []
    truth: dict[tuple[str, str, str], list[float]] = {}

    def add(
        stage: str, kind: str, role: str, number: int, seed: int, blimp: float, **kw: Any
    ) -> None:
        rows.append(
            {
                "sweep": "declared", "stage": stage, "stage_kind": kind, "role": role,
                "trial_id": len(rows) + 1, "number": number, "status": "COMPLETE", "seed": seed,
                "ensemble_size": kw.get("ensemble_size", 0), "source_stage": kw.get("source"),
                "source_trial_id": None, "data_tokens": kw.get("tokens", 120000),
                "dev_loss": 4.0 - 5 * (blimp - 0.6), "test_loss": 4.1 - 5 * (blimp - 0.6),
                "blimp_overall": blimp, "epochs_trained": 2, "blimp_pairs": 2010,
                "node": "node-a", "started_at": pd.Timestamp("2025-01-01", tz="UTC"),
                "ended_at": pd.Timestamp("2025-01-01 00:01", tz="UTC"), "param_lr": 1e-3,
            }
        )  # fmt: skip

    for i in range(6):
        add("teachers", "teachers", "teacher", i, i, 0.60 + rng.normal(0, 0.01))
        add("students_k1", "students", "student", i, 100 + i, 0.61 + rng.normal(0, 0.01),
            ensemble_size=1)  # fmt: skip
        add("students_k4", "students", "student", i, 200 + i, 0.62 + rng.normal(0, 0.01),
            ensemble_size=4)  # fmt: skip
    for j, seed in enumerate(SEEDS):
        shared = rng.normal(0, 0.003)
        for role, source, kind, stage, level, extra in (
            ("teacher", "teachers", "repeats", "repeats", 0.600, {}),
            ("student", "students_k1", "repeats", "repeats", 0.610, {"ensemble_size": 1}),
            ("baseline", "students_k1", "repeats", "repeats", 0.605, {}),
            ("student", "students_k4", "repeats", "repeats", 0.630, {"ensemble_size": 4}),
            ("baseline", "students_k4", "repeats", "repeats", 0.606, {}),
            ("teacher", "teachers", "reference", "reference_x4", 0.640, {"tokens": 480000}),
        ):
            value = level + shared + rng.normal(0, 0.002)
            truth.setdefault((stage, role, source), []).append(value)
            add(stage, kind, role, j, seed, value, source=source, **extra)
    trials = pd.DataFrame(rows)
    empty_metrics = pd.DataFrame(
        columns=["trial_id", "stage", "number", "iteration", "name", "value"]
    )
    frames = Frames(
        sweep="declared",
        sweeps=pd.DataFrame(
            [
                {
                    "sweep": "declared",
                    "status": "COMPLETE",
                    "config_hash": "h",
                    "code_version": "t",
                    "created_at": pd.Timestamp("2025-01-01"),
                    "finished_at": None,
                    "n_trials": len(trials),
                }
            ]
        ),
        trials=trials,
        metrics=empty_metrics,
        evaluations=pd.DataFrame(columns=EVALUATION_COLUMNS),
        ensemble=pd.DataFrame(columns=ENSEMBLE_COLUMNS),
    )
    return frames, truth


def test_every_comparison_the_stages_allow() -> None:
    frames, truth = declared_frames()
    found = {cv.comparison: cv for cv in verdicts(frames)}
    assert set(found) == {
        "students_k1 vs teachers",
        "students_k1 vs alpha=1",
        "students_k1 vs reference",
        "students_k4 vs teachers",
        "students_k4 vs students_k1",
        "students_k4 vs alpha=1",
        "students_k4 vs reference",
    }
    assert found["students_k4 vs students_k1"].label == (
        "ensemble student (students_k4, 4 teachers) vs single-teacher student (students_k1)"
    )
    # seed-paired against scipy: the k4 student against its own alpha=1 baseline
    v = next(m for m in found["students_k4 vs alpha=1"].metrics if m.metric == "blimp_overall")
    s, b = (
        truth[("repeats", "student", "students_k4")],
        truth[("repeats", "baseline", "students_k4")],
    )
    assert v.n_pairs == 5 and v.guard is None  # same config on both sides: no search to match
    assert v.p == pytest.approx(sps.ttest_rel(s, b).pvalue)
    assert v.difference == pytest.approx(np.mean(np.subtract(s, b)))
    assert v.verdict == "better"
    # the reference is better than the k4 student: "worse", paired by seed
    ref = next(m for m in found["students_k4 vs reference"].metrics if m.metric == "blimp_overall")
    r = truth[("reference_x4", "teacher", "teachers")]
    assert ref.difference == pytest.approx(np.mean(np.subtract(s, r)))
    assert ref.difference < 0 and ref.verdict in ("worse", "inconclusive")
    # one Holm family over every reachable test
    family = [m for cv in found.values() for m in cv.metrics if m.in_family]
    assert len(family) == 2 * len(found)


def test_the_report_renders_declared_stages() -> None:
    frames, _ = declared_frames()
    page = render_report(frames)
    row = page[page.index("data-comparison='students_k4 vs alpha=1'") :]
    row = row[: row.index("</tr>")]
    assert "ensemble student (students_k4, 4 teachers) vs its alpha=1 baseline" in row
    assert "<b class='verdict-word verdict-better'>better on BLiMP and test loss</b>" in row
    for group in ("student repeats of students_k4", "baseline repeats of students_k1",
                  "data-scale reference reference_x4 (teachers' chosen config)"):  # fmt: skip
        assert group in page


def test_the_declared_report_draws_in_chromium(chromium: str, tmp_path: Path) -> None:
    frames, _ = declared_frames()
    report = tmp_path / "declared.html"
    report.write_text(render_report(frames), encoding="utf-8")
    figures = render(chromium, report, tmp_path)
    assert figures.page_errors == []
    assert figures.drawn and all(figures.drawn.values())
