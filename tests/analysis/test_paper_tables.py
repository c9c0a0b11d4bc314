"""`sweep report --format markdown|latex`: the headline and verdict tables for a paper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.load import load_frames
from analysis.verdict import verdicts
from tests.analysis.verdict_stores import Plan, write_study

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('paper') / 'paper.db'}"
    write_study(url, Plan(name="paper", reference_blimp=0.63))
    return url


@pytest.fixture(scope="module")
def tables(store: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each format written once by the real console script."""
    out = tmp_path_factory.mktemp("tables")
    return {fmt: _report(store, fmt, out / f"t.{fmt}") for fmt in ("latex", "markdown")}


def _report(store: str, fmt: str, out: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("sweep")), "report", "--storage", store, "--format", fmt,
         "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return out.read_text(encoding="utf-8")


def test_latex_tables_are_booktabs_with_intervals_and_seeds(
    store: str, tables: dict[str, str]
) -> None:
    tex = tables["latex"]
    assert tex.count("\\toprule") == tex.count("\\midrule") == tex.count("\\bottomrule") == 2
    assert "\\hline" not in tex
    assert tex.count("seed repeats over 5 seeds") == 1 and "seed pairs (5 seeds)" in tex
    ref = next(cv for cv in verdicts(load_frames(store)) if cv.kind == "reference")
    blimp = next(v for v in ref.metrics if v.metric == "blimp_overall")
    row = next(
        line
        for line in tex.splitlines()
        if line.startswith("ensemble student") and "reference" in line
    )
    assert f"{100 * blimp.difference:+.2f} [{100 * blimp.low:+.2f}, {100 * blimp.high:+.2f}]" in row
    assert "worse on BLiMP and test loss" in row and row.endswith("& 5 \\\\")
    assert "_" not in tex.replace("\\_", "")


def test_markdown_tables_carry_the_same_numbers(tables: dict[str, str]) -> None:
    md, tex = tables["markdown"], tables["latex"]
    md_rows = [line for line in md.splitlines() if line.startswith("| ensemble student")]
    assert len(md_rows) == 2
    for line in md_rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert " & ".join(cells[1:]) in tex  # the same numbers, cell for cell
    assert md.count("Table: Sweep paper") == 2
