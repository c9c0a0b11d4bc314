"""benchmarks/train_step.py runs end to end on the tiny preset (its figures are printed, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_prints_both_losses_for_teacher_and_student_steps(
    slice_corpus: Callable[..., Path], tmp_path: Path
):
    corpus = slice_corpus(tmp_path / "corpus")
    rows_file = tmp_path / "rows.json"
    command = [
        sys.executable, str(REPO / "benchmarks" / "train_step.py"),
        "--presets", "tiny", "--devices", "cpu", "--vocab-size", "300", "--batch-size", "4",
        "--seq-length", "64", "--steps", "2", "--warmup", "1", "--teachers", "2",
        "--corpus", str(corpus), "--workdir", str(tmp_path / "work"), "--json", str(rows_file),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    print(done.stdout)  # the figures, for whoever reads the CI log with -s or -rA
    assert done.returncode == 0, done.stderr[-3000:]
    assert "failed" not in done.stdout, done.stdout
    rows = json.loads(rows_file.read_text())
    cases = {(row["teachers"], row["loss"]) for row in rows}
    assert cases == {(0, "reference"), (0, "chunked"), (2, "reference"), (2, "chunked")}
    for row in rows:
        assert row["tokens_per_s"] > 0 and row["peak_mib"] > 0, row
        assert row["vocab"] == 300 and row["preset"] == "tiny", row
    assert "chunked/reference peak" in done.stdout
