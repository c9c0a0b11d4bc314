"""`python -m trainers.evaluate`: loss, BLiMP per group and GLUE of any HF checkpoint."""

from __future__ import annotations

import json
import math
import os
import re
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
    # The majority class of those 8 dev pairs, counted from the file, printed and stored.
    words = (data_config.root / "glue" / "RTE" / "dev.tsv").read_text().splitlines()[1:9]
    labels = [line.split("\t")[-1] == "not_entailment" for line in words]
    majority = int(labels.count(True) > labels.count(False))
    rte = scores["glue"]["rte"]
    assert rte["majority_class"] == majority
    assert rte["majority_accuracy"] == max(labels.count(True), labels.count(False)) / 8
    behind = [] if rte["accuracy"] > rte["majority_accuracy"] else ["accuracy"]
    assert rte["not_above_majority"] == behind
    line = f"  majority class (always {majority}): accuracy={rte['majority_accuracy']:.4f}; "
    assert line + ("NOT above it on accuracy" if behind else "beaten") in done.stdout


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
    assert done.stdout.splitlines()[2].startswith("test_loss: ")
    for args, needle in [
        (["--checkpoint", str(tmp_path / "none")], "no such directory"),
        (["--checkpoint", final, "--glue", "wnli"], "--glue: unknown task 'wnli'"),
        (["--checkpoint", final, "--data-root", str(tmp_path / "x")], "data.root"),
    ]:
        bad = evaluate(*args, cache=tmp_path / "cache")
        assert bad.returncode == 2, bad.stderr
        assert "Traceback" not in bad.stderr
        assert needle in bad.stderr


def test_evaluate_scores_under_the_trials_caps_unless_full(
    teachers: list[TrainResult], data_config: DataConfig, tmp_path: Path
):
    """Without cap flags the loss is the trial's own (its recipe_config.json caps), and a line
    says so; --full scores the whole split and says that instead (issue 27, item 4)."""
    final = str(teachers[0].final_dir)
    root = str(data_config.root)
    capped = evaluate("--checkpoint", final, "--data-root", root, cache=tmp_path / "cache")
    assert capped.returncode == 0, capped.stderr
    caps_line = capped.stdout.splitlines()[1]
    assert caps_line.startswith(f"caps: max_eval_tokens={data_config.max_eval_tokens}"), caps_line
    assert "recipe_config.json" in caps_line and "--full" in caps_line
    loss = float(capped.stdout.splitlines()[2].split()[1])
    assert math.isclose(loss, teachers[0].metrics["dev_loss"], rel_tol=1e-3)
    full = evaluate("--checkpoint", final, "--data-root", root, "--full", cache=tmp_path / "cache")
    assert full.returncode == 0, full.stderr
    assert full.stdout.splitlines()[1] == (
        "caps: none (--full: the whole split and every BLiMP pair)"
    )
    assert float(full.stdout.splitlines()[2].split()[1]) != loss


def _in_a_terminal(*args: str, cache: Path) -> tuple[int, str]:
    """Exit code and everything `python -m trainers.evaluate` writes to a pseudo-terminal."""
    from tests.terminal import run_in_terminal

    return run_in_terminal(
        [sys.executable, "-m", "trainers.evaluate", *args],
        env={"SWEEP_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )


def test_evaluate_shows_progress_bars_in_a_terminal_only(
    teachers: list[TrainResult], data_config: DataConfig, tmp_path: Path
):
    """Each long part (loss, BLiMP, zero-shot, fine-tuning) has a bar in a terminal, none when
    the output is captured (issue 27, item 4)."""
    from tests.trainers import task_files

    root = tmp_path / "data"
    root.mkdir()
    for name in ("babylm-mini", "blimp"):
        (root / name).symlink_to(data_config.root / name, target_is_directory=True)
    task_files.link_real_glue(data_config.root, root / "glue")
    task_files.write_zero_shot(root)
    args = (
        "--checkpoint", str(teachers[0].final_dir), "--data-root", str(root),
        "--max-eval-tokens", "2000", "--blimp", "--blimp-pairs", "2",
        "--glue", "rte", "--glue-max-train", "16", "--glue-max-eval", "8",
        "--zero-shot", "blimp_filtered",
    )  # fmt: skip
    code, shown = _in_a_terminal(*args, cache=tmp_path / "cache")
    assert code == 0, shown
    # tqdm's bars: "<name>: <percent>%|<bar>| <done>/<total> [...<unit>/s]"
    for name, unit in [
        ("dev loss", "window"), ("BLiMP", "sentence"), ("GLUE rte", "step"),
        ("blimp_filtered", "item"),
    ]:  # fmt: skip
        assert re.search(rf"{name}: +\d+%\|.*\| \d+/\d+ \[.*{unit}/s", shown), (name, shown)
    assert "blimp_filtered: " in shown and "glue rte: accuracy=" in shown  # the results too

    captured = evaluate(*args, cache=tmp_path / "cache")
    assert captured.returncode == 0, captured.stderr
    assert "%|" not in captured.stderr and "/s]" not in captured.stderr, captured.stderr
    assert "glue rte: accuracy=" in captured.stdout
