"""A store where ASHA pruned the students and not the teachers, and dev and test disagree:
the report warns, compares at matched budget, and headlines test. Plus each wording fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.report import write_report
from tests.analysis.conftest import SynthSweep, SynthTrial, _paradigm_scores, write_store
from tests.analysis.test_report_numbers import readings, report_data, visible_text

RAY_NODE = "a3f9c2" + "0" * 50  # a 56-character Ray node id


def make_asha_sweep(name: str = "asha") -> SynthSweep:
    rng = np.random.default_rng(7)
    trials: list[SynthTrial] = []
    clock = 0.0

    def add(stage: str, number: int, role: str, status: str, dev: float, test: float | None,
            level: float, **kw: Any) -> SynthTrial:  # fmt: skip
        nonlocal clock
        clock += 70.0
        t = SynthTrial(
            f"{stage}/{number}", stage, number, role, status, kw.pop("seed", number),
            {"lr": 1e-3 * (1 + number), "batch_size": 16}, RAY_NODE, clock, clock + 60.0,
            dev, _paradigm_scores(rng, level) if status == "COMPLETE" else {},
            test_loss=test, **kw,
        )  # fmt: skip
        trials.append(t)
        return t

    # teacher 0 wins on dev, teacher 1 on test: the headline must show teacher 0's test loss
    for i, (dev, test) in enumerate([(3.90, 4.30), (3.95, 4.00), (4.00, 4.20), (4.05, 4.25)]):
        add("teachers", i, "teacher", "COMPLETE", dev, test, 0.60 + 0.01 * i)
    teachers = ["teachers/0", "teachers/1"]
    for i in range(8):
        status = "COMPLETE" if i < 3 else "PRUNED"
        # a pruned trial's one dev loss is its epoch-1 value, 0.6 above where it would end
        dev = 3.92 + 0.02 * i + (0.0 if i < 3 else 0.6)
        add("students", i, "student", status, dev, 4.15 + 0.01 * i if i < 3 else None,
            0.62, teachers=teachers)  # fmt: skip
    for j in range(3):
        add("repeats", j, "teacher", "COMPLETE", 3.9, 4.3 + 0.01 * j, 0.60 + 0.002 * j,
            seed=10000 + j, source="teachers/0")  # fmt: skip
        add("repeats", 3 + j, "student", "COMPLETE", 3.92, 4.15 + 0.013 * j, 0.62 + 0.002 * j,
            seed=10000 + j, source="students/0", teachers=teachers)  # fmt: skip
    stages = {
        "teachers": {"trials": 4, "epochs": 3, "scheduler": {"type": "none"}},
        "students": {"trials": 8, "epochs": 3, "scheduler": {"type": "asha", "grace_period": 1}},
    }
    return SynthSweep(name, trials, {"stages": stages})


@pytest.fixture(scope="module")
def asha_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    url = f"sqlite:///{tmp_path_factory.mktemp('asha') / 'sweep.db'}"
    write_store(url, make_asha_sweep())
    return write_report(url, tmp_path_factory.mktemp("asha-report") / "report.html")


def test_asha_asymmetry_is_warned_and_compared_at_matched_budget(asha_report: Path) -> None:
    data = report_data(asha_report)
    text = asha_report.read_text(encoding="utf-8")
    assert text.index('id="warnings"') < text.index('id="verdicts"') < text.index("<section")
    warning = " ".join(data["warnings"])
    assert "the sweep config gives students the scheduler 'asha' and teachers 'none'" in warning
    assert "the sweep config gives students 8 trials and teachers 4" in warning
    assert "early stopping differs: 5 trial(s) of students were pruned and 0 of teachers" in warning
    first = data["verdicts"][0]
    assert first["comparison"] == "students vs teachers"
    guard = first["metrics"][0]["guard"]
    assert guard["k"] == 4  # every trial that ran, pruned ones too: k = min(8 students, 4)
    assert "at epoch 1, which all reached" in guard["basis"]
    matched = data["matched_budget"]["students:blimp_overall"]
    assert matched["k"] == 3  # completed students that trained the same epochs as the teachers


def test_headline_shows_test_where_dev_and_test_disagree(asha_report: Path) -> None:
    rows = {r["group"]: r for r in report_data(asha_report)["headline"]}
    assert rows["teachers"]["test_loss_best"] == pytest.approx(4.30)  # dev's pick, read on test
    assert "dev_loss_best" not in rows["teachers"]
    assert "Which split chose what" in visible_text(asha_report)


def test_wording_fixes(asha_report: Path, demo_report: Path) -> None:
    data = report_data(demo_report)
    # Mann-Whitney effect: P(student better), oriented for a lower-is-better loss
    mw = [t for t in data["tests"] if t["name"] == "Mann-Whitney U"]
    assert mw and all(t["effect_name"] == "P(student better)" for t in mw)
    assert "P(a>b)" not in demo_report.read_text(encoding="utf-8")
    # expected best: lead and trail are worded by sign, never as an absolute gap
    joined = " ".join(readings(demo_report) + readings(asha_report))
    assert "less than the student-teacher gap" not in joined
    for m in report_data(asha_report)["matched_budget"].values():
        word = "lead" if m["student_ahead"] else "trail"
        assert f"the students {word} by" in joined
    # heatmap rows are paradigm names
    text = demo_report.read_text(encoding="utf-8")
    assert "anaphor_gender_agreement" in text and '"paradigm 1"' not in text
    # timeline rows: short node names, never a 56-character Ray id
    page = asha_report.read_text(encoding="utf-8")
    assert "node 1 (a3f9c2)" in page and RAY_NODE not in page.replace(
        report_data_json(asha_report), ""
    )
    # importances on a handful of trials carry a small-sample caveat
    assert data["importance_caveat"] and "Small sample" in joined
    # units: nats per token for losses, BLiMP in % in tables and axes
    visible = visible_text(demo_report)
    assert "test loss (nats/token)" in visible and "BLiMP accuracy (%)" in visible
    assert "BLiMP accuracy (%)" in text.split('id="report-data"')[0].split("</style>")[1]


def report_data_json(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index('id="report-data">')
    return text[start : text.index("</script>", start)]


@pytest.mark.parametrize(
    ("config", "convention", "checkpoint", "words"),
    [
        ({}, "no_space", "last", "without lm-eval's leading space"),
        (
            {"data": {"blimp_convention": "lm_eval"}, "training": {"checkpoint": "best"}},
            "lm_eval",
            "best",
            "lm-evaluation-harness's convention",
        ),
        (
            {"training": {"checkpoint": "best", "checkpoint_metric": "dev_distillation_loss"}},
            "no_space",
            "best",
            "lowest distillation objective on dev (alpha CE + (1 - alpha) T^2 KL",
        ),
    ],
)
def test_methods_say_how_blimp_was_scored_and_which_checkpoint(
    tmp_path: Path, config: dict[str, Any], convention: str, checkpoint: str, words: str
) -> None:
    """The methods footer names the stored sweep's BLiMP convention and checkpoint policy; a
    config from before the setting existed was scored without the space."""
    synth = make_asha_sweep()
    synth.config.update(config)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    write_store(url, synth)
    report = write_report(url, tmp_path / "report.html")
    methods = report_data(report)
    assert (methods["blimp_convention"], methods["checkpoint"]) == (convention, checkpoint)
    text = " ".join(visible_text(report).split())
    assert f"BLiMP scoring {convention}:" in text
    assert words in text
    assert ("(checkpoint: best" in text) == (checkpoint == "best")
    distilled = "checkpoint_metric" in config.get("training", {})
    assert ("best dev loss (checkpoint: best)" in text) == (checkpoint == "best" and not distilled)
