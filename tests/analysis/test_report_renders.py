"""Open the report in headless Chromium: every figure drew an SVG and the page logged no error.

Chromium comes from Debian (`apt-get install chromium`); `--dump-dom` after a virtual-time
budget gives the DOM once every script has run, and a small script injected ahead of plotly.js
records uncaught errors, rejected promises and console.error calls on the <html> element.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--enable-unsafe-swiftshader",  # software WebGL for the parallel-coordinates plot
    "--virtual-time-budget=20000",
]
ERROR_HOOK = """<script>
(function () {
  var errors = [];
  function keep(text) {
    errors.push(String(text));
    document.documentElement.setAttribute("data-page-errors", JSON.stringify(errors));
  }
  document.documentElement.setAttribute("data-page-errors", "[]");
  window.addEventListener("error", function (e) { keep("error: " + e.message); });
  window.addEventListener("unhandledrejection", function (e) { keep("rejection: " + e.reason); });
  var original = console.error;
  console.error = function () {
    keep("console.error: " + Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
})();
</script>"""


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary; under CI=true a missing browser fails the test, never skips it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if IN_CI:
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    pytest.skip("chromium is not installed (apt-get install -y chromium)")


class _Figures(HTMLParser):
    """Each plotly div's id -> whether a <svg class="main-svg"> was drawn inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn: dict[str, bool] = {}
        self.page_errors: list[str] | None = None
        self._stack: list[str | None] = []  # the figure id each open div belongs to

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html" and a.get("data-page-errors") is not None:
            self.page_errors = json.loads(a["data-page-errors"] or "[]")
        current = next((f for f in reversed(self._stack) if f), None)
        if tag == "div":
            if "plotly-graph-div" in (a.get("class") or "").split():
                current = a.get("id") or f"anonymous-{len(self.drawn)}"
                self.drawn[current] = False
            self._stack.append(current)
        elif tag == "svg" and current and "main-svg" in (a.get("class") or "").split():
            self.drawn[current] = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._stack:
            self._stack.pop()


def render(chromium: str, report: Path, workdir: Path) -> _Figures:
    page = report.read_text(encoding="utf-8").replace("<head>", "<head>" + ERROR_HOOK, 1)
    hooked = workdir / "hooked.html"
    hooked.write_text(page, encoding="utf-8")
    result = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={workdir / 'profile'}",
            "--dump-dom",
            hooked.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = _Figures()
    figures.feed(result.stdout)
    assert figures.page_errors is not None, "the page's scripts did not run"
    return figures


def _figure_count(report: Path) -> int:
    return report.read_text(encoding="utf-8").count('class="plotly-graph-div"')


def test_every_figure_of_the_report_draws_without_errors(
    chromium: str, demo_report: Path, tmp_path: Path
) -> None:
    figures = render(chromium, demo_report, tmp_path)
    assert figures.page_errors == []
    expected = _figure_count(demo_report)
    assert expected >= 7  # expected best, slices, parcoords, importances, heatmap, curves, timeline
    assert len(figures.drawn) == expected
    assert all(figures.drawn.values()), [f for f, ok in figures.drawn.items() if not ok]


def test_the_thin_report_draws_too(chromium: str, thin_report: Path, tmp_path: Path) -> None:
    figures = render(chromium, thin_report, tmp_path)
    assert figures.page_errors == []
    assert len(figures.drawn) == _figure_count(thin_report) >= 1
    assert all(figures.drawn.values())
