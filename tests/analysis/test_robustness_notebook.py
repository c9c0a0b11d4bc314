"""analysis/notebooks/robustness.ipynb runs headless (nbclient) against a store and reproduces
the report's headline table and its expected-best figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "analysis" / "notebooks" / "robustness.ipynb"
# Appended to the executed copy only: hands the notebook's headline table back to the test.
PROBE = "import json; print('HEADLINE=' + headline.to_json(orient='records'))"


def run_notebook(storage_url: str, sweep: str | None, monkeypatch: pytest.MonkeyPatch) -> Any:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    monkeypatch.setenv("SWEEP_STORAGE_URL", storage_url)
    if sweep is None:
        monkeypatch.delenv("SWEEP_NAME", raising=False)
    else:
        monkeypatch.setenv("SWEEP_NAME", sweep)
    # the kernel inherits os.environ (the two variables above) and runs in the repo root
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()
    return nb


def _outputs(nb: Any) -> list[dict[str, Any]]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def _headline(nb: Any) -> list[dict[str, Any]]:
    text = "".join(o.get("text", "") for o in _outputs(nb) if o["output_type"] == "stream")
    line = next(ln for ln in text.splitlines() if ln.startswith("HEADLINE="))
    return json.loads(line.removeprefix("HEADLINE="))  # type: ignore[no-any-return]


def test_notebook_reproduces_the_headline_table_and_figure(
    demo_store: str, demo_sweep: Any, demo_report: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = run_notebook(demo_store, "demo", monkeypatch)
    outputs = _outputs(nb)
    assert not [o for o in outputs if o["output_type"] == "error"]
    rows = {r["group"]: r for r in _headline(nb)}
    students = sorted(t.blimp for t in demo_sweep.of("students"))
    cut = len(students) // 4
    assert rows["students"]["blimp_overall_iqm"] == pytest.approx(
        np.mean(students[cut : len(students) - cut])
    )
    # the same numbers as the HTML report
    text = demo_report.read_text(encoding="utf-8")
    start = text.index('id="report-data">') + len('id="report-data">')
    report = json.loads(text[start : text.index("</script>", start)])
    for row in report["headline"]:
        mine = rows[row["group"]]
        for key in ("trials", "blimp_overall_best", "blimp_overall_iqm_low", "test_loss_iqm_high"):
            assert mine[key] == pytest.approx(row[key]), (row["group"], key)
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 1
    traces = figures[0]["data"]["application/vnd.plotly.v1+json"]["data"]
    assert {t["name"].split(" ")[0] for t in traces} == {"teachers", "students"}


def test_notebook_on_a_thin_sweep_without_a_sweep_name(
    thin_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = run_notebook(thin_store, None, monkeypatch)
    assert not [o for o in _outputs(nb) if o["output_type"] == "error"]
    students = next(r for r in _headline(nb) if r["group"] == "students")
    assert students["trials"] == 1
    assert students["blimp_overall_iqm_low"] is None
    assert "3+" in students["blimp_overall_note"]
