"""`sweep data check` and `sweep data prepare-eval` on BabyLM's (Super)GLUE tasks and suites.

Every task but MRPC and RTE (the real files, linked) is a small file in its official
format written by tests/trainers/task_files.py.
"""

from __future__ import annotations

from pathlib import Path

from test_data_cli import flat, run

from tests.trainers import task_files


def _downloads(tmp_path: Path, data_root: Path) -> Path:
    """Shaped as the downloads unpack: glue_data/<Task>/, SuperGLUE's folders, evaluation_data/."""
    source = tmp_path / "downloads"
    staged = tmp_path / "staged_glue"
    task_files.write_glue_tasks(staged)
    for name in ("CoLA", "SST-2", "QQP", "MNLI", "QNLI"):
        (staged / name).rename(_mkparent(source / "glue_data" / name))
    for name in ("BoolQ", "MultiRC", "WSC"):
        (staged / name).rename(_mkparent(source / "superglue" / name))
    task_files.write_zero_shot(source / "evaluation_data")
    return source


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _root(tmp_path: Path, data_root: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "babylm-mini").symlink_to(data_root / "babylm-mini")
    (root / "blimp").symlink_to(data_root / "blimp")
    task_files.link_real_glue(data_root, root / "glue")
    return root


def test_check_names_the_tasks_and_suites_not_set_up(tmp_path: Path, data_root: Path):
    done = run("data", "check", str(_root(tmp_path, data_root)))
    assert done.exit_code == 0, done.output
    out = flat(done.output)
    assert "glue mrpc: train 3,667, dev 408 rows (TSV)" in out
    assert "cola (CoLA/train.tsv, dev.tsv)" in out
    assert "mnli-mm (MNLI/train.tsv, dev_mismatched.tsv)" in out
    assert "multirc (MultiRC/train.jsonl, val.jsonl)" in out
    assert "zero-shot: not set up" in out and "ewok (ewok_filtered/)" in out


def test_prepare_eval_lays_out_every_download_that_check_then_reads(
    tmp_path: Path, data_root: Path
):
    root = _root(tmp_path, data_root)
    done = run("data", "prepare-eval", str(_downloads(tmp_path, data_root)), str(root))
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (root / "glue").iterdir()) == [
        "BoolQ", "CoLA", "MNLI", "MRPC", "MultiRC", "QNLI", "QQP", "RTE", "SST-2", "WSC",
    ]  # fmt: skip
    assert sorted(p.name for p in (root / "glue" / "MNLI").iterdir()) == [
        "dev_matched.tsv", "dev_mismatched.tsv", "train.tsv",
    ]  # fmt: skip
    done = run("data", "check", str(root))
    assert done.exit_code == 0, done.output
    out = flat(done.output)
    assert "glue cola: train 6, dev 6 rows (TSV)" in out
    assert "glue multirc: train 7, dev 7 rows (JSONL)" in out
    assert "glue mnli-mm: train 6, dev 4 rows (TSV)" in out
    assert "blimp_supplement: 2 subtasks, 3 items" in out
    assert "ewok: 2 subtasks, 3 items" in out
    assert "not set up" not in out


def test_a_wrong_layout_is_named_and_nothing_is_laid_out(tmp_path: Path, data_root: Path):
    root = _root(tmp_path, data_root)
    source = _downloads(tmp_path, data_root)
    bad = source / "glue_data" / "QNLI" / "dev.tsv"
    bad.write_text("index\tquestion\ttext\tlabel\n0\tq\ts\tentailment\n")
    done = run("data", "prepare-eval", str(source), str(root))
    assert done.exit_code == 2
    assert "Traceback" not in done.output
    assert str(bad) in flat(done.output) and "'sentence'" in flat(done.output)
    assert sorted(p.name for p in (root / "glue").iterdir()) == ["MRPC", "RTE"]
    assert not (root / "ewok_filtered").exists()

    (root / "glue" / "QNLI").mkdir()
    bad.rename(root / "glue" / "QNLI" / "dev.tsv")
    done = run("data", "check", str(root))
    assert done.exit_code == 2
    problems = [line for line in done.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2, done.output  # train.tsv missing; dev.tsv lacks 'sentence'
