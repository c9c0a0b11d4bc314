"""Bad input that used to hang or crash (issue 28, issue 27 item 10): each case is refused by
`sweep validate` and `sweep run` alike, exit 2, one line naming the field, no traceback,
nothing written beside the yaml (no .db, no runs/); a case that used to hang finishes
within a bound the test sets.

`run` is the real command in-process where it refuses before the store (its store is
replaced by a stop sign, so a file it wrongly accepted fails at once instead of starting
Ray); the hang cases run the real console script in a subprocess with a timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
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
SWEEP = str(Path(sys.executable).parent / "sweep")
HANG_BOUND_S = 120  # generous on a loaded 2-core machine; the hangs used to be forever


def _yaml(**changes: Any) -> Callable[[Path], str]:
    """The default sweep.yaml with dotted-path changes (`a__b` goes one level in)."""

    def make(tmp: Path) -> str:
        doc = yaml.safe_load(DEFAULT)
        for dotted, value in changes.items():
            *parents, leaf = dotted.split("__")
            node = doc
            for key in parents:
                node = node[key]
            node[leaf] = value(tmp) if callable(value) else value
        return yaml.safe_dump(doc, sort_keys=False)

    return make


def _text(text: str) -> Callable[[Path], str]:
    return lambda tmp: text


_SPACE = "stages__teachers__space"
# (id, the file from tmp, the field the one problem line starts with, a piece of it)
REFUSED: list[tuple[str, Callable[[Path], str], str, str]] = [
    # issue 27 item 10: what `run` crashed on after writing the store
    ("int-step-0", _yaml(**{_SPACE: {"epochs": {"dist": "int", "low": 1, "high": 3, "step": 0}}}),
     "stages.teachers.space.epochs.step:", "must be > 0"),
    ("uniform-step-0", _yaml(**{_SPACE: {"weight_decay": {"dist": "uniform", "low": 0.0,
                                                          "high": 0.1, "step": 0.0}}}),
     "stages.teachers.space.weight_decay.step:", "must be > 0"),
    ("int-log-step-2", _yaml(**{_SPACE: {"epochs": {"dist": "int", "low": 1, "high": 4,
                                                    "step": 2, "log": True}}}),
     "stages.teachers.space.epochs.step:", "only step 1"),
    ("output-dir-proc", _yaml(output_dir="/proc/x"), "output_dir:", "/proc"),
    ("output-dir-unknown-scheme", _yaml(output_dir="nosuch://bucket/runs"), "output_dir:",
     "unknown scheme 'nosuch'"),
    ("output-dir-s3-unreachable", _yaml(output_dir="s3://babysweep-no-such-bucket-e4f1/runs"),
     "output_dir:", "s3://babysweep-no-such-bucket-e4f1/runs"),
    ("output-dir-100k-chars", _yaml(output_dir=lambda t: str(t / ("a" * 100_000))),
     "output_dir:", "100,"),
    # issue 28: silently wrong
    ("storage-memory", _yaml(storage="sqlite:///:memory:"), "storage:", "in-memory"),
    ("storage-sqlite-bare", _yaml(storage="sqlite://"), "storage:", "in-memory"),
    ("cache-dir-proc", _yaml(data__cache_dir="/proc/x"), "data.cache_dir:", "/proc"),
    # issue 28: data and trackers that gave tracebacks
    ("vocab-2-62", _yaml(data__vocab_size=2**62), "data.vocab_size:", "less than or equal"),
    ("mlflow-unknown-scheme", _yaml(tracking={"mlflow": {"tracking_uri": "foo://x/y"}}),
     "tracking.mlflow.tracking_uri:", "unknown scheme 'foo'"),
    ("mlflow-file-store", _yaml(tracking={"mlflow": {"tracking_uri": "./mlruns"}}),
     "tracking.mlflow.tracking_uri:", "file store"),
    ("mlflow-memory", _yaml(tracking={"mlflow": {"tracking_uri": "sqlite:///:memory:"}}),
     "tracking.mlflow.tracking_uri:", "in-memory"),
    ("stage-names-twice-in-a-list",
     _text("name: twice\nstages:\n  - {name: teachers, trials: 2}\n"
           "  - {name: teachers, trials: 3}\n"),
     "stages:", "'teachers' is declared more than once"),
]  # fmt: skip


class _ReachedTheStore(Exception):
    """`run` accepted the file: it would open the store now."""


def _stop(*args: Any, **kwargs: Any) -> None:
    raise _ReachedTheStore


@pytest.fixture
def run_stops_at_the_store() -> Iterator[None]:
    with mock.patch("sweep.study.Store", _stop):
        yield


def _problem_lines(output: str) -> list[str]:
    """The lines after `error: <file> is invalid:` (or the one `error:` line itself)."""
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("error:"))
    if lines[start].endswith("is invalid:"):
        return lines[start + 1 :]
    return [lines[start].removeprefix("error: ")]


def _nothing_written(work: Path) -> None:
    assert sorted(p.name for p in work.iterdir()) == ["sweep.yaml"], "something was written"


def _refused_in_one_line(yaml_text: str, tmp_path: Path) -> str:
    """validate and run of this file both exit 2 with the same single problem line, no
    traceback, and nothing written beside the file; returns that line."""
    work = tmp_path / "sweep"
    work.mkdir()
    (work / "sweep.yaml").write_text(yaml_text)
    runner = CliRunner()
    checked = runner.invoke(app, ["validate", str(work / "sweep.yaml")])
    ran = runner.invoke(app, ["run", str(work / "sweep.yaml")])
    for result in (checked, ran):
        assert result.exit_code == 2, (result.output, result.exception)
        assert "Traceback" not in result.output
    problems = _problem_lines(checked.output)
    assert len(problems) == 1, problems
    assert _problem_lines(ran.output) == problems
    _nothing_written(work)
    return problems[0]


@pytest.mark.parametrize(("case", "make", "field", "needle"), REFUSED, ids=[r[0] for r in REFUSED])
def test_validate_and_run_refuse_in_one_line(
    run_stops_at_the_store: None,
    tmp_path: Path,
    case: str,
    make: Callable[[Path], str],
    field: str,
    needle: str,
) -> None:
    problem = _refused_in_one_line(make(tmp_path), tmp_path)
    assert problem.startswith(field) and needle in problem, problem
    assert len(problem) < 600, "a message quotes a huge value whole"


def _cli(
    *args: str, cwd: Path, timeout: float = HANG_BOUND_S, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SWEEP, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "RAY_ADDRESS": "", **env},
        timeout=timeout,
    )


def _one_clean_refusal(proc: subprocess.CompletedProcess, needle: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    problems = _problem_lines(proc.stderr)
    assert len(problems) == 1 and needle in problems[0], problems


@pytest.mark.parametrize(
    "text",
    [
        "name: fz\nx: &x [1, *x]\n",  # the file
        "name: fz\nx: &x {a: [*x]}\n",
        "name: fz\nstages: &s {teachers: {space: *s}}\n",
    ],
    ids=["list", "mapping", "stages"],
)
def test_a_self_referencing_alias_is_refused_not_walked_forever(tmp_path: Path, text: str) -> None:
    (tmp_path / "sweep.yaml").write_text(text)
    for command in ("validate", "run"):
        proc = _cli(command, "sweep.yaml", cwd=tmp_path)  # raises TimeoutExpired on a hang
        _one_clean_refusal(proc, "is inside the value it names")
    _nothing_written(tmp_path)


def test_trials_more_cpus_than_the_local_ray_has_are_refused_by_run(
    run_stops_at_the_store: None, tmp_path: Path
) -> None:
    """validate warns (a cluster may have them); run on a local Ray refuses at once."""
    from sweep.cluster_fit import local_cpus

    wanted = local_cpus() + 62
    work = tmp_path / "sweep"
    work.mkdir()
    (work / "sweep.yaml").write_text(_yaml(stages__teachers__resources={"cpu": wanted})(tmp_path))
    runner = CliRunner()
    checked = runner.invoke(app, ["validate", str(work / "sweep.yaml")])
    assert checked.exit_code == 0, checked.output
    assert "warning: stages.teachers.resources.cpu:" in checked.output
    ran = runner.invoke(app, ["run", str(work / "sweep.yaml")])
    assert ran.exit_code == 2, (ran.output, ran.exception)
    problems = _problem_lines(ran.output)
    assert len(problems) == 1, problems
    assert problems[0].startswith("stages.teachers.resources.cpu:")
    assert f"{wanted} CPUs per trial" in problems[0] and "wait forever" in problems[0]
    _nothing_written(work)


def test_a_gpu_on_a_machine_without_one_is_refused_by_run(
    run_stops_at_the_store: None, tmp_path: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    work = tmp_path / "sweep"
    work.mkdir()
    (work / "sweep.yaml").write_text(_yaml(stages__teachers__resources={"gpu": 1})(tmp_path))
    ran = CliRunner().invoke(app, ["run", str(work / "sweep.yaml")])
    assert ran.exit_code == 2, (ran.output, ran.exception)
    problems = _problem_lines(ran.output)
    assert len(problems) == 1 and problems[0].startswith("stages.teachers.resources.gpu:")
    assert "no GPU" in problems[0]
    _nothing_written(work)


def test_cluster_nodes_that_cannot_place_a_trial_are_named() -> None:
    """Against the nodes Ray reports (the run-time check): the largest node is named."""
    from sweep.cluster_fit import cluster_resource_problems
    from sweep.config import load_sweep_config

    config = load_sweep_config(REPO / "sweep.yaml")
    heavy = config.stages["teachers"].model_copy(
        update={"resources": config.stages["teachers"].resources.model_copy(update={"gpu": 1})}
    )
    config = config.model_copy(update={"stages": {**config.stages, "teachers": heavy}})
    nodes = [
        {"Alive": True, "Resources": {"CPU": 8.0}},
        {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 4.0}},  # a dead node gives nothing
    ]
    lines = cluster_resource_problems(config, ["teachers", "students_k2"], nodes)
    assert lines == [
        "stages.teachers.resources: a trial asks for 1 CPU and 1 GPU, but no node of the Ray "
        "cluster has that (largest: 8 CPU, 0 GPU)"
    ]
    nodes[1]["Alive"] = True
    assert cluster_resource_problems(config, ["teachers"], nodes) == []


def test_a_ray_address_where_nothing_listens_is_refused_in_bounded_time(tmp_path: Path) -> None:
    """127.0.0.1:1 used to retry forever and leave the sweep RUNNING: now bounded retries,
    then one line, exit 2, and no store written."""
    (tmp_path / "sweep.yaml").write_text(_yaml(ray_address="127.0.0.1:1")(tmp_path))
    proc = _cli("run", "sweep.yaml", cwd=tmp_path, SWEEP_RAY_CONNECT_TIMEOUT_S="3")
    _one_clean_refusal(proc, "ray_address: nothing answers at 127.0.0.1:1")
    assert "tries in 3 s" in proc.stderr
    _nothing_written(tmp_path)


def test_ctrl_c_while_waiting_for_the_ray_head_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(_yaml(ray_address="127.0.0.1:1")(tmp_path))
    child = subprocess.Popen(
        [SWEEP, "run", "sweep.yaml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAY_ADDRESS": "", "SWEEP_RAY_CONNECT_TIMEOUT_S": "3600"},
    )
    try:
        assert child.stderr is not None
        first = child.stderr.readline()  # the event: it is retrying now
        assert "does not answer" in first, first
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        _, rest = child.communicate(timeout=HANG_BOUND_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 2, first + rest
    assert "Traceback" not in rest
    assert "ray_address: interrupted while waiting for 127.0.0.1:1" in rest
    _nothing_written(tmp_path)


# --- data files the trainers would crash on, after trials have trained ------------------


def _data_root(tmp: Path, data: Path) -> Path:
    """The shared data root as links (never copies), so one file can be replaced."""
    root = tmp / "data"
    for folder in ("babylm-mini/train", "babylm-mini/dev", "babylm-mini/test", "blimp",
                   "glue/MRPC", "glue/RTE"):  # fmt: skip
        (root / folder).mkdir(parents=True)
        for f in (data / folder).iterdir():
            (root / folder / f.name).symlink_to(f)
    return root


def _replace(path: Path, content: bytes) -> None:
    path.unlink()
    path.write_bytes(content)


def _non_utf8_train(root: Path) -> Path:
    path = root / "babylm-mini" / "train" / "childes.train"
    _replace(path, path.resolve().read_bytes()[:5000] + b"\nthe caf\xe9 is open\n")
    return path


def _non_utf8_dev(root: Path) -> Path:
    path = root / "babylm-mini" / "dev" / "childes.dev"
    _replace(path, b"a good line\n\xff\xfe\n")
    return path


def _blank_train(root: Path) -> Path:
    for f in (root / "babylm-mini" / "train").iterdir():
        _replace(f, b"  \n\t\n   \n")
    return root / "babylm-mini" / "train"


def _binary_blimp(root: Path) -> Path:
    path = root / "blimp" / "adjunct_island.jsonl"
    _replace(path, bytes(range(256)) * 4)
    return path


def _blimp_not_pairs(root: Path) -> Path:
    path = root / "blimp" / "wh_island.jsonl"
    _replace(path, b'{"sentence_good": "Who ran?"}\n')
    return path


def _binary_glue(root: Path) -> Path:
    path = root / "glue" / "RTE" / "dev.tsv"
    _replace(path, bytes(range(256)) * 4)
    return path


def _glue_bad_row(root: Path) -> Path:
    path = root / "glue" / "MRPC" / "train.tsv"
    lines = path.resolve().read_bytes().split(b"\n")[:20]
    _replace(path, b"\n".join([*lines, b"1\tonly two fields"]) + b"\n")
    return path


DATA_CASES = [
    ("corpus-train-not-utf8", _non_utf8_train, "data.corpus:", "is not UTF-8 text"),
    ("corpus-dev-not-utf8", _non_utf8_dev, "data.corpus:", "is not UTF-8 text"),
    ("corpus-train-whitespace-only", _blank_train, "data.corpus:", "only whitespace"),
    ("blimp-binary", _binary_blimp, "data.blimp:", "is not UTF-8 text"),
    ("blimp-not-pairs", _blimp_not_pairs, "data.blimp:", "not a BLiMP pair"),
    ("glue-binary", _binary_glue, "data.glue:", "is not UTF-8 text"),
    ("glue-bad-row", _glue_bad_row, "data.glue:", "tab-separated fields"),
]


@pytest.mark.parametrize(
    ("case", "damage", "field", "needle"), DATA_CASES, ids=[c[0] for c in DATA_CASES]
)
def test_data_the_trainers_would_crash_on_is_refused_before_anything_trains(
    run_stops_at_the_store: None,
    data_root: Path,
    tmp_path: Path,
    case: str,
    damage: Callable[[Path], Path],
    field: str,
    needle: str,
) -> None:
    """validate and run refuse it with `sweep data check`'s line (naming the file), and
    data check itself says so without a traceback."""
    root = _data_root(tmp_path, data_root)
    damaged = damage(root)
    problem = _refused_in_one_line(_yaml(data__root=str(root))(tmp_path), tmp_path)
    assert problem.startswith(f"{field} {damaged}") and needle in problem, problem

    checked_data = CliRunner().invoke(app, ["data", "check", str(root)])
    assert checked_data.exit_code == 2, (checked_data.output, checked_data.exception)
    assert not isinstance(checked_data.exception, Exception | RecursionError)
    found = [ln for ln in checked_data.output.splitlines() if ln.startswith("problem:")]
    assert any(str(damaged.relative_to(tmp_path)) in ln or str(damaged) in ln for ln in found), (
        found
    )


def test_status_right_after_a_kill_9_says_the_driver_is_gone(tmp_path: Path) -> None:
    """A driver killed with SIGKILL leaves its lease and a RUNNING sweep: `sweep status`
    says that process no longer runs, not only its pid."""
    from sweep.store import Store, SweepStatus

    url = f"sqlite:///{tmp_path / 'store.db'}"
    code = (
        "import sys, time; from sweep.store import Store, SweepStatus; "
        "from sweep.lease import SweepLease; store = Store(sys.argv[1]); "
        "lease = SweepLease(store, 'demo'); lease.acquire(); "
        "i = store.upsert_sweep('demo', config={}, config_hash='h', code_version='t'); "
        "store.set_sweep_status(i, SweepStatus.RUNNING); print('held', flush=True); time.sleep(600)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        alive = _cli("status", "--storage", url, "--sweep", "demo", cwd=tmp_path)
        assert alive.returncode == 0, alive.stderr
        assert f"pid {child.pid}" in alive.stdout and "gone" not in alive.stdout
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        after = _cli("status", "--storage", url, "--sweep", "demo", cwd=tmp_path)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert after.returncode == 0, after.stderr
    assert "RUNNING" in after.stdout
    driver = next(ln for ln in after.stdout.splitlines() if "driver:" in ln)
    assert f"pid {child.pid}" in driver and "gone: that process no longer runs" in driver, driver
    store = Store(url, upgrade=False)
    try:
        sweep = store.get_sweep("demo")
        assert sweep is not None and sweep.status == SweepStatus.RUNNING  # status only reads
    finally:
        store.dispose()


# --- decisions docs/INPUT.md states -------------------------------------------------------


def test_a_quoted_number_is_read_as_the_number(tmp_path: Path) -> None:
    from sweep.config import load_sweep_config

    (tmp_path / "sweep.yaml").write_text(_yaml(stages__teachers__trials="2")(tmp_path))
    assert load_sweep_config(tmp_path / "sweep.yaml").stages["teachers"].trials == 2


def test_utf16_with_a_byte_order_mark_is_the_same_config_and_without_one_is_refused(
    tmp_path: Path,
) -> None:
    from sweep.config import load_sweep_config

    text = DEFAULT
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "sweep.yaml").write_bytes(text.encode("utf-8"))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "sweep.yaml").write_bytes(text.encode("utf-16"))  # with its BOM
    utf8 = load_sweep_config(tmp_path / "a" / "sweep.yaml")
    utf16 = load_sweep_config(tmp_path / "b" / "sweep.yaml")
    assert utf16.config_hash() == utf8.config_hash()
    work = tmp_path / "c"
    work.mkdir()
    (work / "sweep.yaml").write_bytes(text.encode("utf-16-le"))  # no BOM
    result = CliRunner().invoke(app, ["validate", str(work / "sweep.yaml")])
    assert result.exit_code == 2
    assert _problem_lines(result.output) == [
        f"{work / 'sweep.yaml'}: holds NUL bytes, as UTF-16 or UTF-32 text without a "
        "byte-order mark does; save it as UTF-8"
    ]


def test_a_stage_whose_trials_all_failed_names_the_first_trials_error(tmp_path: Path) -> None:
    """The line `sweep run` stops with when every trial of a stage failed: the first
    trial's stored root error (the recorder stores it first, then the traceback), not a
    later stage's 'only 0 teacher trials ... lower k'. (The full run is not exercised here:
    it needs Ray and training.)"""
    from sweep.store import Store, TrialStatus
    from sweep.study import _first_error

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        sweep_id = store.upsert_sweep("demo", config={}, config_hash="h", code_version="t")
        stage_id = store.upsert_stage(sweep_id, "teachers", kind="teachers")
        errors = {
            1: "TrainerError: data.blimp: x.jsonl, line 3: not a BLiMP pair\n\nTraceback ...",
            0: "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff\n\nTraceback (most...",
        }
        for number, error in errors.items():
            trial_id = store.upsert_trial(
                stage_id=stage_id, number=number, role="teacher", params={}, seed=number
            )
            store.finish_trial(trial_id, TrialStatus.FAILED, error=error)
        assert _first_error(store, stage_id) == (
            "the first (#0) says: UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff"
        )
    finally:
        store.dispose()


def test_only_the_stages_that_will_run_must_fit_the_local_ray() -> None:
    """`sweep run --stage teachers` of a file whose students want a GPU runs the teachers here:
    only the stages to run are held to this machine's resources."""
    from sweep.cluster_fit import local_resource_problems
    from sweep.config import load_sweep_config

    config = load_sweep_config(REPO / "sweep.yaml")
    gpu = config.stages["students_k2"].resources.model_copy(update={"gpu": 1})
    students = config.stages["students_k2"].model_copy(update={"resources": gpu})
    config = config.model_copy(update={"stages": {**config.stages, "students_k2": students}})
    if shutil.which("nvidia-smi") is None:  # CI and laptops without a GPU
        assert [line.split(":")[0] for line in local_resource_problems(config)] == [
            "stages.students_k2.resources.gpu"
        ]
    assert list(local_resource_problems(config, ["teachers"])) == []
