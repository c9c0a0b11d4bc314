"""The methods section names the text the stored sweep trained on (`data.pipeline`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.report import write_report
from tests.analysis.conftest import write_store
from tests.analysis.test_fair_report import make_asha_sweep
from tests.analysis.test_report_numbers import visible_text


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({}, "data pipeline babysweep: each line of the corpus a document"),
        ({"pipeline": "babyllama2"}, "data pipeline babyllama2: the BabyLlama-2 reference's text"),
    ],
)
def test_methods_name_the_data_pipeline(tmp_path: Path, data: dict, words: str) -> None:
    synth = make_asha_sweep()
    synth.config.setdefault("data", {}).update(data)
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    write_store(url, synth)
    text = " ".join(visible_text(write_report(url, tmp_path / "report.html")).split())
    assert words in text
    other = "babyllama2:" if "babysweep:" in words else "babysweep:"
    assert f"data pipeline {other}" not in text
