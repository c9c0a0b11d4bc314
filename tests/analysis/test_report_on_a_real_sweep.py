"""The report and the notebook on a store written by a real tiny sweep (Ray, Optuna, models)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sweep.cli import app
from sweep.store import read_trials
from tests.analysis.test_report_renders import chromium as chromium
from tests.analysis.test_report_renders import render
from tests.analysis.test_robustness_notebook import _headline, _outputs, run_notebook

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_report(tiny_study, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real-report") / "report.html"
    result = CliRunner().invoke(app, ["report", str(tiny_study.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _data(report: Path) -> dict:
    text = report.read_text(encoding="utf-8")
    match = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S
    )
    assert match, "the report embeds its numbers"
    return json.loads(match.group(1))


def test_report_headline_matches_the_store(tiny_study, real_report: Path) -> None:
    trials = read_trials(tiny_study.url, "demo")
    data = _data(real_report)
    done = trials[(trials.stage == "students") & (trials.status == "COMPLETE")]
    # the student the dev loss picks, read on BLiMP: computed here from the store
    chosen = done.sort_values(["dev_loss", "number"]).iloc[0]
    row = next(r for r in data["headline"] if r["group"] == "students")
    assert row["blimp_overall_best"] == pytest.approx(float(chosen["blimp_overall"]))
    # one verdict line per comparison the stages allow, each with its word
    kinds = {v["kind"] for v in data["verdicts"]}
    assert "teachers" in kinds and "baseline" in kinds
    for v in data["verdicts"]:
        assert v["verdict"] in ("better", "worse", "inconclusive")
        assert v["line"].startswith(v["label"])


def test_real_report_draws_every_figure(chromium: str, real_report: Path, tmp_path: Path) -> None:
    figures = render(chromium, real_report, tmp_path)
    assert figures.page_errors == []
    assert figures.drawn and all(figures.drawn.values())


def test_notebook_runs_on_the_real_store(tiny_study, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = run_notebook(tiny_study.url, "demo", monkeypatch)
    assert not [o for o in _outputs(nb) if o["output_type"] == "error"]
    rows = {r["group"]: r for r in _headline(nb)}
    trials = read_trials(tiny_study.url, "demo")
    teachers = trials[(trials.stage == "teachers") & (trials.status == "COMPLETE")]
    chosen = teachers.sort_values(["dev_loss", "number"]).iloc[0]
    # held-out test loss once trials record it; an older store falls back to dev loss
    loss = "test_loss" if "test_loss_best" in rows["teachers"] else "dev_loss"
    assert rows["teachers"][f"{loss}_best"] == pytest.approx(float(chosen[loss]))
    assert np.isfinite(rows["students"]["blimp_overall_mean"])
