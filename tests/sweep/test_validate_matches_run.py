"""`sweep validate` says what `sweep run` will say (issue 19), and every bad file is a clean error
(issue 18's named crashes, each a regression case): exit 2, one line per problem, the same
lines from both commands, nothing written.

`run` here is the real command in-process: it refuses these files before it opens the
store, so it never reaches Ray.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from typer.testing import CliRunner

from sweep.cli import app

REPO = Path(__file__).resolve().parents[2]
DEFAULT = (REPO / "sweep.yaml").read_text()
DATA = Path(os.environ.get("SWEEP_DATA_DIR", REPO.parent / "shared" / "data"))


def _corpus_without(tmp: Path, missing: str) -> str:
    """babylm-mini with one split left out (files linked, not copied)."""
    corpus = tmp / f"no-{missing}"
    for split in ("train", "dev", "test"):
        if split == missing:
            continue
        (corpus / split).mkdir(parents=True)
        for f in (DATA / "babylm-mini" / split).iterdir():
            (corpus / split / f.name).symlink_to(f)
    return str(corpus)


def _with(text: str, **top: object) -> Callable[[Path], str]:
    """The default sweep.yaml with top-level sections merged (dotted keys go one level in)."""

    def make(tmp: Path) -> str:
        doc = yaml.safe_load(DEFAULT)
        for dotted, value in top.items():
            *parents, leaf = dotted.split("__")
            node = doc
            for key in parents:
                node = node[key]
            node[leaf] = value(tmp) if callable(value) else value
        return yaml.safe_dump(doc, sort_keys=False) + text

    return make


def _a_file(tmp: Path) -> str:
    (tmp / "a-file").write_text("x")
    return str(tmp / "a-file")


def _glue_without_rte(tmp: Path) -> str:
    (tmp / "glue" / "MRPC").mkdir(parents=True)
    for f in ("train.tsv", "dev.tsv"):
        (tmp / "glue" / "MRPC" / f).symlink_to(DATA / "glue" / "MRPC" / f)
    return str(tmp / "glue")


# (id, the file's text (or bytes) from tmp, a piece of the error line both commands print)
REFUSALS: list[tuple[str, Callable[[Path], str | bytes], str]] = [
    # issue 19: what `run` used to find only after writing the store
    ("corpus-without-test", _with("", data__corpus=lambda t: _corpus_without(t, "test")), "test"),
    ("corpus-without-dev", _with("", data__corpus=lambda t: _corpus_without(t, "dev")), "dev"),
    ("no-blimp", _with("", data__blimp="nowhere"), "data.blimp:"),
    (
        "no-glue-dir",
        _with("", data__glue="nowhere", evaluation__glue__stages=["repeats"]),
        "data.glue:",
    ),
    (
        "glue-task-missing",
        _with("", data__glue=_glue_without_rte, evaluation__glue__stages=["repeats"]),
        "RTE/train.tsv is missing",
    ),
    ("output-dir-is-a-file", _with("", output_dir=_a_file), "output_dir:"),
    ("cache-dir-under-a-file", _with("", data__cache_dir=lambda t: _a_file(t) + "/c"), "cache_dir"),
    ("storage-dialect", _with("", storage="mysql://root@localhost/x"), "storage: unknown"),
    ("storage-not-a-url", _with("", storage="not a url"), "storage: not a database URL"),
    ("storage-dir-missing", _with("", storage="sqlite:////nowhere/x.db"), "storage: directory"),
    ("ray-address-form", _with("", ray_address="http//head node"), "ray_address:"),
    ("ray-address-port", _with("", ray_address="head:99999"), "ray_address:"),
    ("data-root-missing", _with("", data__root="/nowhere"), "data.root:"),
    # issue 18: the named crashes and silent acceptances
    ("nested-5000-deep", lambda t: DEFAULT + "extra: " + "[" * 5000 + "]" * 5000 + "\n", "deep"),
    ("random-bytes", lambda t: bytes(range(256)) * 4, "not utf-8 text"),
    (
        "nan-range",
        _with(
            "",
            stages__teachers__space={
                "lr": {"dist": "loguniform", "low": float("nan"), "high": float("nan")}
            },
        ),
        "stages.teachers.space.lr.low: nan is not a finite number",
    ),
    ("lr-inf", _with("", training__lr=float("inf")), "training.lr: inf is not a finite number"),
    ("seed-10-30", _with("", seed=10**30), "seed:"),
    ("seed-negative", _with("", seed=-1), "seed:"),
    ("seed-too-close-to-2-32", _with("", seed=2**32 - 5), "seed: 4294967291 is too large"),
    ("training-seed-2-32", _with("", training__seed=2**32), "training.seed:"),
    ("glue-seed-negative", _with("", evaluation={"glue": {"seed": -3}}), "evaluation.glue.seed:"),
    ("duplicate-name", lambda t: "name: first\n" + DEFAULT, "name: duplicate key"),
    (
        "epochs-true",
        _with("", stages__teachers__epochs=True),
        "stages.teachers.epochs: expected an integer, got true",
    ),
    (
        "trials-true",
        _with("", stages__students_k2__trials=True),
        "stages.students_k2.trials: expected an integer, got true",
    ),
    (
        "cpu-true",
        _with("", stages__teachers__resources={"cpu": True}),
        "resources.cpu: expected a number",
    ),
    (
        "control-character",
        lambda t: DEFAULT.replace("name: demo", "name: de\x07mo"),
        "not allowed in YAML",
    ),
    (
        "alias-bomb",
        lambda t: (
            DEFAULT
            + "x: &a [1,1,1,1,1,1,1,1,1,1]\n"
            + "".join(
                f"x{i}: &a{i} [" + ",".join([f"*a{i - 1}" if i else "*a"] * 10) + "]\n"
                for i in range(6)
            )
        ),
        "aliases",
    ),
]


class _ReachedTheStore(Exception):
    """`run` accepted the file: it would open the store now (a case that refuses nothing)."""


def _stop(*args: Any, **kwargs: Any) -> None:
    raise _ReachedTheStore


@pytest.fixture
def run_stops_at_the_store() -> Iterator[None]:
    """A case that `run` accepted fails at once instead of starting a sweep."""
    with mock.patch("sweep.study.Store", _stop):
        yield


def _error_lines(output: str) -> list[str]:
    """`error: <heading or problem>` and the problem lines after it."""
    lines = output.strip().splitlines()
    starts = [i for i, ln in enumerate(lines) if ln.startswith("error:")]
    assert starts, output
    return lines[starts[0] :]


@pytest.mark.parametrize(("case", "make", "needle"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_validate_refuses_what_run_refuses(
    run_stops_at_the_store: None,
    tmp_path: Path,
    case: str,
    make: Callable[[Path], str | bytes],
    needle: str,
) -> None:
    work = tmp_path / "sweep"
    work.mkdir()
    content = make(tmp_path)
    path = work / "sweep.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    runner = CliRunner()
    checked = runner.invoke(app, ["validate", str(path)])
    ran = runner.invoke(app, ["run", str(path)])
    for result in (checked, ran):
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert not isinstance(result.exception, Exception | RecursionError), result.exception
    assert needle in checked.output, checked.output
    assert _error_lines(checked.output) == _error_lines(ran.output)
    assert sorted(p.name for p in work.iterdir()) == ["sweep.yaml"], "run wrote something"


def test_three_mistakes_and_no_data_dir_are_all_reported(tmp_path: Path) -> None:
    doc = yaml.safe_load(DEFAULT)
    doc["data"]["root"] = str(tmp_path / "no-data-here")
    doc["stages"]["teachers"]["space"]["lr"] = {"dist": "loguniform", "low": 0.1, "high": 0.01}
    doc["stages"]["students_k2"]["space"]["alpha"] = 1.5
    doc["stages"]["ensemble_k2"]["k"] = 9
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))  # stages run in file order
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    lines = _error_lines(result.output)
    assert len(lines) == 5, lines  # the heading and one line per problem
    for field in ("data.root:", "space.lr.high:", "space.alpha:", "stages.ensemble_k2.k:"):
        assert sum(field in ln for ln in lines) == 1, (field, lines)


def test_messages_are_not_wrapped_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    """A long path and a long message stay on one line each in a pipe."""
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "sweep"
    deep.mkdir(parents=True)
    path = deep / "sweep.yaml"
    path.write_text(DEFAULT.replace("name: demo", "name: demo\nname: again"))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "sweep"), "validate", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: {path}: name: duplicate key"), proc.stderr
    assert len(proc.stderr) > 160


def test_a_run_that_cannot_start_is_failed_with_its_reason(tmp_path: Path) -> None:
    """The test split vanishes between the checks and the run (a shared disk being synced):
    the run stops before its first trial, the sweep is FAILED with the reason, not RUNNING,
    and no driver holds it."""
    from sweep.config import load_sweep_config
    from sweep.store import Store, render_status
    from sweep.study import run_study

    corpus = tmp_path / "corpus"
    for split in ("train", "dev", "test"):
        (corpus / split).mkdir(parents=True)
        source = next((DATA / "babylm-mini" / split).iterdir())
        lines = source.read_text().splitlines()[:400]
        (corpus / split / f"childes.{split}").write_text("\n".join(lines) + "\n")
    doc = yaml.safe_load(DEFAULT)
    doc["data"].update(corpus=str(corpus), vocab_size=300, cache_dir=str(tmp_path / "cache"))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    config = load_sweep_config(path)
    for f in (corpus / "test").iterdir():
        f.unlink()
    (corpus / "test").rmdir()

    with pytest.raises(Exception, match=r"data.corpus: .*test does not exist"):
        run_study(config)
    store = Store(config.storage or "", upgrade=False)
    try:
        sweep = store.get_sweep("demo")
        assert sweep is not None and sweep.status == "FAILED"
        assert sweep.error is not None and "test does not exist" in sweep.error
        assert store.get_lease("demo") is None
        assert store.stages(sweep.id) == []  # no stage, no trial was started
        from rich.console import Console

        console = Console(width=200, record=True)
        console.print(render_status(store, "demo"))
        shown = console.export_text()
        assert "FAILED" in shown and "driver: none" in shown
        assert "failed: data.corpus:" in shown
    finally:
        store.dispose()
