"""The report's consistency (4b) and cost (6b) sections on the demo store: their numbers
against the trials the demo wrote, and both drawn in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.cost import overheads, stage_costs
from analysis.load import load_frames
from tests.analysis.conftest import EPOCHS, EVAL_TOKENS, PARAMETERS, TOKENS_PER_EPOCH, SynthSweep
from tests.analysis.test_report_renders import _Figures, render
from tests.analysis.test_report_renders import chromium as chromium


class _Sections(_Figures):
    """Also: which section each figure, table and consistency verdict line sits in."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.figures_in: dict[str, list[str]] = {}
        self.tables_in: dict[str, list[str]] = {}
        self.verdicts_in: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self.section = a.get("id")
        elif self.section and tag == "div" and "plotly-graph-div" in (a.get("class") or ""):
            self.figures_in.setdefault(self.section, []).append(a.get("id") or "")
        elif self.section and tag == "table" and a.get("data-table"):
            self.tables_in.setdefault(self.section, []).append(a["data-table"] or "")
        elif tag == "li" and "consistency-" in (a.get("class") or ""):
            where = self.section or a.get("class", "").split()[0]  # the top box: no section
            self.verdicts_in[where] = self.verdicts_in.get(where, 0) + 1
        super().handle_starttag(tag, attrs)


def test_the_demo_report_shows_consistency_and_cost_in_chromium(
    chromium: str,
    demo_report: Path,
    tmp_path: Path,
) -> None:
    dom = render(chromium, demo_report, tmp_path)
    page = _Sections()
    page.feed((tmp_path / "hooked.html").read_text(encoding="utf-8"))  # where each thing sits
    assert dom.page_errors == []
    # its verdict line opens the report (beside the other verdicts) and section 4b
    assert page.verdicts_in == {"consistency-line": 1, "consistency": 1}
    assert page.tables_in["consistency"] == ["consistency"]
    assert page.tables_in["cost"] == ["cost-stages", "cost-overhead"]
    for section in ("consistency", "cost"):
        assert page.figures_in[section], section
        assert all(dom.drawn[f] for f in page.figures_in[section]), section
    text = demo_report.read_text(encoding="utf-8")
    data = json.loads(text.split('id="report-data">')[1].split("</script>")[0])
    assert data["consistency_lines"][0].startswith(
        "ensemble student (students, 2 teachers) vs teachers"
    )
    assert data["cost"]["device_unit"] == "CPU core-hours"


def test_cost_numbers_equal_the_demo_trials(demo_store: str, demo_sweep: SynthSweep) -> None:
    frames = load_frames(demo_store, "demo")
    costs = stage_costs(frames).set_index("stage")
    for stage in ("teachers", "students"):
        trials = [t for t in demo_sweep.trials if t.stage == stage]
        wall = sum(t.end_s - t.start_s for t in trials if t.end_s is not None)  # 1 CPU each
        assert costs.loc[stage, "device_hours"] == pytest.approx(wall / 3600)
    flops = 0.0
    for t in demo_sweep.trials:  # every student wrote all its epochs or, pruned, one
        if t.stage != "students":
            continue
        epochs = EPOCHS if t.status == "COMPLETE" else 1
        tokens = epochs * TOKENS_PER_EPOCH
        evaluated = EVAL_TOKENS * (epochs + (1 if epochs == EPOCHS else 0))
        k = len(t.teachers)
        flops += 6 * PARAMETERS * tokens + 2 * k * PARAMETERS * tokens + 2 * PARAMETERS * evaluated
    assert costs.loc["students", "train_flops"] == pytest.approx(flops)
    (overhead,) = overheads(frames)
    assert overhead.label == "K=2 over no distillation"
    assert overhead.ideal == pytest.approx(5 / 3)
    # the demo's students train at 3 / (3 + 1.1 K) of the throughput without teachers
    assert overhead.measured == pytest.approx((3 + 1.1 * 2) / 3, rel=0.02)


def test_overhead_reads_the_alpha_one_controls_of_the_same_model_size() -> None:
    import pandas as pd

    from analysis.load import Frames

    rows = []
    # (stage, kind, role, teachers, tokens/s, parameters): teachers are bigger and slower
    for stage, kind, role, k, speed, n in (
        ("teachers", "teachers", "teacher", 0, 500.0, 2_000_000),
        ("students", "students", "student", 2, 600.0, 1_000_000),
        ("baselines", "baselines", "baseline", 0, 1000.0, 1_000_000),
    ):
        for i in range(3):
            rows.append(
                {"sweep": "s", "stage": stage, "stage_kind": kind, "role": role,
                 "trial_id": len(rows) + 1, "number": i, "status": "COMPLETE",
                 "ensemble_size": k, "tokens_per_s": speed, "num_parameters": float(n),
                 "device_seconds": 1000.0 / speed, "tokens_trained": 1000.0,
                 "train_flops": (6.0 + 2.0 * k) * n * 1000.0}
            )  # fmt: skip
    frames = Frames(
        sweep="s",
        sweeps=pd.DataFrame([{"sweep": "s"}]),
        trials=pd.DataFrame(rows),
        metrics=pd.DataFrame(columns=["trial_id", "stage", "iteration", "name", "value"]),
        evaluations=pd.DataFrame(),
        ensemble=pd.DataFrame(),
    )
    (overhead,) = overheads(frames)
    assert overhead.measured == pytest.approx(1000 / 600)  # against the baselines, not teachers
    assert overhead.flops == pytest.approx(10 / 6) and overhead.ideal == pytest.approx(5 / 3)
