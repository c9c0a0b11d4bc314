"""The CLI surface: every user error is one message, exit 2, no traceback, no password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from sweep.cli import app

SECRET = "s3cret-pw"
SWEEP = str(Path(sys.executable).parent / "sweep")


def _cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """The real console script, as a user runs it."""
    return subprocess.run(
        [SWEEP, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "RAY_ADDRESS": "", **env},
        timeout=300,
    )


def _refused(proc: subprocess.CompletedProcess, *needles: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    assert SECRET not in out
    for needle in needles:
        assert needle in out, out
    return out


@pytest.mark.parametrize("command", ["run", "status", "report", "dashboard"])
def test_unreachable_database_is_one_message(
    command: str, write_tiny_sweep, tmp_path: Path, postgres_server: str
) -> None:
    path = write_tiny_sweep(tmp_path / "cfg")
    url = f"postgresql+psycopg://nobody:{SECRET}@127.0.0.1:1/test"
    _refused(_cli(command, str(path), "--storage", url), "cannot reach", "nobody:***@127.0.0.1:1")
    assert sorted(p.name for p in (tmp_path / "cfg").iterdir()) == ["sweep.yaml"]


def test_wrong_password_is_masked(write_tiny_sweep, tmp_path: Path, postgres_server: str) -> None:
    path = write_tiny_sweep(tmp_path)
    url = f"postgresql+psycopg://nobody_x:{SECRET}@127.0.0.1:5432/test"
    _refused(_cli("run", str(path), "--storage", url), "cannot log in", ":***@")


def test_unknown_stage_and_unknown_dialect(write_tiny_sweep, tmp_path: Path) -> None:
    path = write_tiny_sweep(tmp_path)
    _refused(_cli("run", str(path), "--stage", "studnets"), "--stage", "students")
    _refused(_cli("run", str(path), "--rerun"), "--rerun", "--stage")
    _refused(_cli("run", str(path), "--storage", "mysql://root@localhost/x"), "storage:", "dialect")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


def test_status_needs_a_store_to_read(tmp_path: Path) -> None:
    env = {"SWEEP_STORAGE_URL": ""}
    _refused(_cli("status", cwd=tmp_path, **env), "sweep.yaml", "--storage")
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    _refused(_cli("status", "--storage", missing))
    assert not (tmp_path / "none.db").exists()


def test_db_upgrade_then_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = CliRunner().invoke(app, ["db", "upgrade", url])
    assert result.exit_code == 0, result.output
    assert "empty ->" in result.output
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE babysweep_alembic_version SET version_num = '0099'"))
    engine.dispose()
    _refused(_cli("status", "--storage", url), "newer babysweep", "0099")


@pytest.mark.slow
def test_status_and_report_read_a_finished_sweep(tiny_study, tmp_path: Path) -> None:
    status = _cli("status", "--storage", tiny_study.url, "--sweep", "demo", COLUMNS="200")
    assert status.returncode == 0, status.stderr
    for stage in ("teachers", "ensemble", "students", "baselines", "repeats"):
        assert stage in status.stdout
    # the best value is printed with the objective it is a value of
    assert status.stdout.count("dev_loss") == 4, status.stdout
    out = tmp_path / "r.html"
    report = _cli("report", str(tiny_study.path), "--out", str(out))
    assert report.returncode == 0, report.stderr
    assert out.stat().st_size > 100_000  # plotly.js is inline: the file opens offline
    _refused(_cli("report", "--storage", tiny_study.url, "--sweep", "nope"), "nope", "demo")


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_dashboard_serves_the_studies_on_localhost(tmp_path: Path, stop: str) -> None:
    """...and stops cleanly (exit 0, no traceback) on SIGTERM as on Ctrl-C."""
    import json
    import signal
    import socket
    import time
    import urllib.request

    import optuna

    url = f"sqlite:///{tmp_path / 'store.db'}"
    CliRunner().invoke(app, ["db", "upgrade", url])
    optuna.create_study(study_name="demo/teachers", storage=url).optimize(
        lambda t: t.suggest_float("lr", 1e-4, 1e-2, log=True), n_trials=2
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [SWEEP, "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as r:
                    studies = json.load(r)["study_summaries"]
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "no dashboard"
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == ["demo/teachers"]
    finally:
        server.send_signal(getattr(signal, stop))
        try:
            out, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            out, _ = server.communicate()
            pytest.fail(f"the dashboard ignored {stop}: {out}")
    assert f"http://127.0.0.1:{port}" in out
    assert server.returncode == 0, out
    assert "Traceback" not in out and "dashboard stopped" in out
