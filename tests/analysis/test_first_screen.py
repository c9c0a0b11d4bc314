"""The report's first screen: the verdict table and the forest plot tell the same numbers, and the
screen fits 1400 px of Chromium without scrolling sideways."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.report import render_report
from analysis.sections import fmt_diff
from tests.analysis.test_declared_stages import declared_frames
from tests.analysis.test_report_renders import CHROMIUM_FLAGS, ERROR_HOOK, _Figures
from tests.analysis.test_report_renders import chromium as chromium

SCALE = {"blimp_overall": 100.0}


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames, _ = declared_frames()
    out = tmp_path_factory.mktemp("first_screen") / "declared.html"
    out.write_text(render_report(frames), encoding="utf-8")
    return out


def _report_data(text: str) -> dict[str, Any]:
    raw = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert raw is not None
    return json.loads(raw.group(1).replace("<\\/", "</"))


def _numbers(values: Any) -> list[float | None]:
    """A plotly array as JSON gives it: a list, or a typed array ({"dtype", "bdata"})."""
    if isinstance(values, dict):
        import base64

        return list(np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]))
    return [None if v is None else float(v) for v in values]


def _plotly_figures(text: str) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Each figure's data and layout, decoded from its Plotly.newPlot call."""
    decoder = json.JSONDecoder()
    out = {}
    for m in re.finditer(r'Plotly\.newPlot\(\s*"([\w-]+)",\s*', text):
        data, end = decoder.raw_decode(text, m.end())
        rest = re.match(r"\s*,\s*", text[end:])
        assert rest is not None
        layout, _ = decoder.raw_decode(text, end + rest.end())
        out[m.group(1)] = (data, layout)
    return out


def test_forest_points_and_intervals_are_the_tables_numbers(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    rows = _report_data(text)["verdict_table"]
    assert len(rows) == 7
    forests = [(d, lay) for d, lay in _plotly_figures(text).values() if lay.get("meta") == "forest"]
    assert len(forests) == 1
    traces = {t["meta"]: t for t in forests[0][0]}
    assert set(traces) == {"blimp_overall", "test_loss"}  # side by side
    table = text[text.index("data-table='verdict-table'") :]
    table = table[: table.index("</table>")]
    for metric, trace in traces.items():
        scale = SCALE.get(metric, 1.0)
        assert trace["y"] == [r["short_label"] for r in rows]
        x = _numbers(trace["x"])
        plus, minus = _numbers(trace["error_x"]["array"]), _numbers(trace["error_x"]["arrayminus"])
        for r, xi, p, mi in zip(rows, x, plus, minus, strict=True):
            cell = r["metrics"][metric]
            assert xi == pytest.approx(cell["difference"] * scale)
            assert xi + p == pytest.approx(cell["high"] * scale)
            assert xi - mi == pytest.approx(cell["low"] * scale)
            shown = (
                f"{fmt_diff(metric, cell['difference'])} [{fmt_diff(metric, cell['low'])}, "
                f"{fmt_diff(metric, cell['high'])}]"
            )
            assert shown in table  # the table prints the same interval
    # one expandable line per row, and a coloured word that names the metric where it matters
    assert table.count("<details>") == len(rows)
    assert table.count("class='verdict-word verdict-") == len(rows)


SCROLL_PROBE = """<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    var d = document.documentElement, box = document.getElementById("verdicts");
    d.setAttribute("data-widths", JSON.stringify({
      page: d.scrollWidth, window: d.clientWidth, box: box.scrollWidth, boxVisible: box.clientWidth,
      bottom: box.getBoundingClientRect().bottom
    }));
  }, 1000);
});
</script>"""


def test_first_screen_fits_1400_px_in_chromium(chromium: str, page: Path, tmp_path: Path) -> None:
    text = page.read_text(encoding="utf-8")
    text = text.replace("<head>", "<head>" + ERROR_HOOK, 1).replace(
        "</body>", SCROLL_PROBE + "</body>", 1
    )
    hooked = tmp_path / "hooked.html"
    hooked.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, "--window-size=1400,1000",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", hooked.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    figures = _Figures()
    figures.feed(result.stdout)
    assert figures.page_errors == []
    assert figures.drawn and all(figures.drawn.values())
    found = re.search(r'data-widths="([^"]*)"', result.stdout)
    assert found is not None, "the probe did not run"
    widths = json.loads(found.group(1).replace("&quot;", '"'))
    assert widths["window"] >= 1300  # the window really was 1400 px wide (less a scrollbar)
    assert widths["page"] <= widths["window"], widths  # no horizontal scroll
    assert widths["box"] <= widths["boxVisible"], widths
