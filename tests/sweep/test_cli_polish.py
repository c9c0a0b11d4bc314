"""Small things a user meets first: -h, --version, flags, SQLite slashes, a misspelt dist."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import yaml
from typer.testing import CliRunner

from sweep.cli import app

SWEEP = str(Path(sys.executable).parent / "sweep")


def flat(text: str) -> str:
    return " ".join(text.split())


def test_short_help_and_version() -> None:
    top = CliRunner().invoke(app, ["-h"], prog_name="sweep")
    assert top.exit_code == 0 and "Usage: sweep" in top.output
    for command in (["run"], ["export"], ["data", "check"]):
        sub = CliRunner().invoke(app, [*command, "-h"], prog_name="sweep", env={"COLUMNS": "120"})
        assert sub.exit_code == 0, sub.output
        assert "Usage: sweep " + " ".join(command) in sub.output
    proc = subprocess.run([SWEEP, "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stdout.startswith(f"babysweep {version('babysweep')}")


def test_flags_show_no_value_placeholder() -> None:
    out = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "140"}).output
    resume = next(line for line in out.splitlines() if "--resume" in line)
    assert "<bool>" not in out and "BOOLEAN" not in out
    assert "--resume" in resume and "Continue an interrupted sweep" in resume
    assert "--address" in out and "<str>" in out  # options that take a value still say so


def test_relative_sqlite_url_gets_the_four_slash_hint(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    relative = f"sqlite://{missing}"  # three slashes + an absolute-looking path: relative
    result = CliRunner().invoke(app, ["status", "--storage", relative])
    assert result.exit_code == 2
    text = flat(result.output)
    assert f"for {missing} write four slashes, sqlite:///{missing}" in text
    absolute = CliRunner().invoke(app, ["status", "--storage", f"sqlite:///{missing}"])
    assert absolute.exit_code == 2 and "four slashes" not in absolute.output


def test_relative_sqlite_in_run_gets_the_hint(write_tiny_sweep, tmp_path: Path) -> None:
    path = write_tiny_sweep(tmp_path)
    result = CliRunner().invoke(app, ["run", str(path), "--storage", "sqlite:///nowhere/x.db"])
    assert result.exit_code == 2
    assert "for /nowhere/x.db write four slashes, sqlite:////nowhere/x.db" in flat(result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


def test_misspelt_dist_is_one_line(write_tiny_sweep, tmp_path: Path) -> None:
    path = write_tiny_sweep(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["stages"]["students"]["space"]["alpha"]["dist"] = "unifrom"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = subprocess.run(
        [SWEEP, "validate", str(path)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0].endswith("is invalid:")
    assert len(lines) == 2, lines  # the header and one line
    assert lines[1].startswith(
        "stages.students.space.alpha: unknown dist 'unifrom'; use one of 'loguniform', 'uniform'"
    )
