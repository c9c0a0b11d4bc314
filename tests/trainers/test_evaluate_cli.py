"""`python -m trainers.evaluate`: loss, BLiMP per group and GLUE of any HF checkpoint."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

from trainers.config import DataConfig
from trainers.recipe import TrainResult

REPO = Path(__file__).resolve().parents[2]


def evaluate(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWEEP_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "trainers.evaluate", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )


def test_evaluate_prints_loss_blimp_groups_and_glue(
    teachers: list[TrainResult], data_config: DataConfig, tmp_path: Path
):
    final = teachers[0].final_dir
    out = tmp_path / "scores.json"
    done = evaluate(
        "--checkpoint", str(final), "--data-root", str(data_config.root),
        "--max-eval-tokens", str(data_config.max_eval_tokens),
        "--blimp", "--blimp-pairs", "3",
        "--glue", "rte", "--glue-max-train", "16", "--glue-max-eval", "8",
        "--json", str(out),
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    scores = json.loads(out.read_text())
    # The same checkpoint, split, cap and window the recipe scored at its last epoch.
    assert math.isclose(scores["dev_loss"], teachers[0].metrics["dev_loss"], rel_tol=1e-4)
    assert f"dev_loss: {scores['dev_loss']:.4f}" in done.stdout
    assert len(scores["blimp_paradigms"]) == 67
    assert len(scores["blimp_groups"]) == 12
    assert "island_effects" in done.stdout
    assert scores["blimp_overall"] == sum(scores["blimp_paradigms"].values()) / 67
    assert scores["glue"]["rte"]["n"] == 8
    assert "glue rte: accuracy=" in done.stdout


def test_evaluate_test_split_and_bad_input(
    teachers: list[TrainResult], data_config: DataConfig, tmp_path: Path
):
    final = str(teachers[0].final_dir)
    root = str(data_config.root)
    done = evaluate(
        "--checkpoint", final, "--data-root", root, "--split", "test", "--max-eval-tokens", "2000",
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("test_loss: ")
    for args, needle in [
        (["--checkpoint", str(tmp_path / "none")], "no such directory"),
        (["--checkpoint", final, "--glue", "cola"], "--glue: unknown task 'cola'"),
        (["--checkpoint", final, "--data-root", str(tmp_path / "x")], "data.root"),
    ]:
        bad = evaluate(*args, cache=tmp_path / "cache")
        assert bad.returncode == 2, bad.stderr
        assert "Traceback" not in bad.stderr
        assert needle in bad.stderr
