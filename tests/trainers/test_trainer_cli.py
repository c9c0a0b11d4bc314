"""`python -m trainers.pretrain` / `trainers.distill`, and the example yamls we ship."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainers._cli import run_recipe_cli
from trainers.config import load_recipe_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples" / "trainers").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_yamls_load_and_name_their_command(path: Path):
    first_line = path.read_text().splitlines()[0]
    module = "trainers.distill" if "student" in path.name else "trainers.pretrain"
    assert first_line.startswith(f"# python -m {module} --config examples/trainers/{path.name}")
    config = load_recipe_config(path)
    assert config.data.corpus.is_dir()
    assert config.output_dir.is_absolute()


def test_examples_are_shipped():
    assert {p.name for p in EXAMPLES} == {"teacher.yaml", "teacher2.yaml", "student.yaml"}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_user_error_exits_2_without_traceback(tmp_path: Path):
    config = tmp_path / "teacher.yaml"
    config.write_text(f"data: {{corpus: {tmp_path / 'no_corpus'}, root: {tmp_path}}}\n")
    done = run_cli("trainers.pretrain", "--config", str(config), "--quiet")
    assert done.returncode == 2
    assert done.stderr.startswith("error: data.corpus: ")
    assert "no_corpus/train does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_distill_refuses_missing_teacher(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = tmp_path / "student.yaml"
    config.write_text(f"data: {{cache_dir: {tmp_path}}}\ntraining: {{alpha: 0.5}}\n")
    teachers = f"{tmp_path / 't1'},{tmp_path / 't2'}"
    code = run_recipe_cli(["--config", str(config), "--teachers", teachers], distill=True)
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: teacher {tmp_path / 't1'}: no such directory")


def test_student_example_distils_from_teachers_the_examples_make():
    student = REPO / "examples" / "trainers" / "student.yaml"
    command = student.read_text().splitlines()[0]
    teachers = command.split("--teachers", 1)[1].split()[0].split(",")
    made = {
        (load_recipe_config(p).output_dir / "final").resolve()
        for p in EXAMPLES
        if p.name != "student.yaml"
    }
    assert len(teachers) == 2
    assert {(REPO / t).resolve() for t in teachers} <= made
    readme = (REPO / "examples" / "trainers" / "README.md").read_text()
    for path in EXAMPLES:
        assert f"examples/trainers/{path.name}" in readme
