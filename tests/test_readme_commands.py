"""Every command quoted in README.md and docs/ runs, as written, against the default study.

The study is the default sweep.yaml's stage layout (teachers, ensemble_k1/k2, students_k1/k2,
baselines, repeats, reference: the names a new user types) at the test size: 2 trials a
stage, 1 seed, 1 epoch, the micro model (14 trials: about 5 minutes on 2 quiet cores, 15 or
more at load 20). Each quoted `sweep ...` / `python -m ...` line runs in a
subprocess with `sweep.yaml` meaning that study's file; it must exit 0 without a traceback.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
# Quoted commands that cannot run here, and what covers them instead.
NOT_RUN = {
    "sweep dashboard": "a server until Ctrl-C: tests/sweep/test_cli.py serves and stops it",
    "sweep data prepare": "needs the BabyLM download: tests/sweep/test_data_cli.py",
}


def quoted_commands() -> list[tuple[str, str]]:
    """(file name, command) for each `sweep`/`python -m` line of the docs' bash blocks."""
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S):
            for line in block.splitlines():
                command = line.split("  #", 1)[0].split(" # ", 1)[0].strip()
                if command.startswith(("sweep ", "python -m ")):
                    found.append((doc.name, command))
    return found


def runnable_commands() -> list[tuple[str, str]]:
    """The quoted commands this test runs: all but the NOT_RUN ones (no skips in CI)."""
    return [(d, c) for d, c in quoted_commands() if not c.startswith(tuple(NOT_RUN))]


def test_the_docs_quote_the_commands_this_test_runs() -> None:
    commands = [c for _, c in runnable_commands()]
    for expected in ("sweep validate", "sweep best", "sweep export", "python -m trainers.evaluate"):
        assert any(c.startswith(expected) for c in commands), expected
    # every exclusion stands for a command the docs really quote (none left over)
    quoted = [c for _, c in quoted_commands()]
    for prefix in NOT_RUN:
        assert any(c.startswith(prefix) for c in quoted), prefix


def test_the_readmes_bad_input_example_is_what_validate_prints(tmp_path: Path) -> None:
    readme = " ".join(
        (REPO / "README.md").read_text().split("Bad input gets one message")[1].split()
    )
    space, stage, quoted = re.search(r"\(`alpha: (\{.*?\})` in `(\w+)`: `(.*?)`\)", readme).groups()
    doc = yaml.safe_load((REPO / "sweep.yaml").read_text())
    doc["stages"][stage]["space"]["alpha"] = yaml.safe_load(space)
    bad = tmp_path / "sweep.yaml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    done = subprocess.run(
        [str(BIN / "sweep"), "validate", str(bad)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert quoted in " ".join(done.stderr.split()), done.stderr


@pytest.fixture(scope="module")
def default_study(ray_local: None, write_tiny_sweep, tmp_path_factory: pytest.TempPathFactory):
    """The default sweep.yaml's stages, small, run to the end in a folder of its own."""
    from sweep.config import load_sweep_config
    from sweep.study import run_study

    stages = yaml.safe_load((REPO / "sweep.yaml").read_text())["stages"]
    for stage in stages.values():
        for key, value in (("trials", 2), ("epochs", 1), ("seeds", 1), ("data_scale", 2)):
            if key in stage:
                stage[key] = value
        if "batch_size" in stage.get("space", {}):
            stage["space"]["batch_size"] = 16
    folder = tmp_path_factory.mktemp("default-study")
    path = write_tiny_sweep(folder, stages=stages)
    run_study(load_sweep_config(path))
    return path


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the first one builds the study: minutes, more on a loaded machine
@pytest.mark.parametrize(("doc", "command"), runnable_commands(), ids=lambda v: str(v)[:60])
def test_a_quoted_command_runs_on_the_default_study(
    doc: str, command: str, default_study: Path, data_root: Path
) -> None:
    folder = default_study.parent
    url = f"sqlite:///{folder / 'demo.db'}"
    argv = [
        {"sweep.yaml": str(default_study), "URL": url, "../shared/data": str(data_root)}.get(a, a)
        for a in shlex.split(command)
    ]
    if argv[0] == "sweep":
        argv[0] = str(BIN / "sweep")
    else:  # python -m ...
        argv[0] = sys.executable
    if "--checkpoint" in argv and not (folder / "models" / "best").is_dir():
        subprocess.run(
            [str(BIN / "sweep"), "export", str(default_study), "--out", "models/best"],
            cwd=folder, check=True, capture_output=True,
        )  # fmt: skip
    done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{doc}: {command}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


def test_the_readmes_size_of_the_default_study_is_what_validate_counts(tmp_path: Path) -> None:
    """README: 'N trials in the M stages that train, beside K ensemble picks' against the
    planners' count that `sweep validate` prints (issue 27: the README said 28, validate 26)."""
    readme = " ".join((REPO / "README.md").read_text().split())
    trials, training, picks = map(
        int,
        re.search(
            r"(\d+) trials in the (\d+) stages that train, beside (\d+) ensemble picks", readme
        ).groups(),
    )
    done = subprocess.run(
        [str(BIN / "sweep"), "validate", str(REPO / "sweep.yaml"),
         "--storage", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"# total: {trials} trials," in done.stdout, done.stdout
    kinds = [
        s["kind"] for s in yaml.safe_load((REPO / "sweep.yaml").read_text())["stages"].values()
    ]
    assert (training, picks) == (len(kinds) - kinds.count("ensemble"), kinds.count("ensemble"))
