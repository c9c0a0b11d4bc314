"""Fixtures shared by every test package: the data root and the PostgreSQL under test."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Callable, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest

from trainers.config import resolve_data_root

POSTGRES_URL = os.environ.get(
    "SWEEP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


# Fixtures that train models or start Ray: a test using one is slow whether or not it says so,
# so `make test-fast` (-m "not slow") leaves it out.
_SLOW_FIXTURES = {"tiny_study", "ray_local", "teachers"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared data (babylm-mini, blimp, glue), found as the product finds it."""
    return resolve_data_root(None)


def _postgres_reachable(url: str) -> str | None:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any driver error means "not reachable" here
        return str(exc).splitlines()[0]
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL URL; under CI=true an unreachable server fails the test, never skips it."""
    problem = _postgres_reachable(POSTGRES_URL)
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL at SWEEP_TEST_POSTGRES_URL is unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable (set SWEEP_TEST_POSTGRES_URL): {problem}")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty schema on the test server, dropped afterwards (tests never share tables)."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(postgres_server)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


StartProcess = Callable[..., BaseProcess]


@pytest.fixture
def child_processes() -> Iterator[StartProcess]:
    """`start(method, target, *args)`: a child process ("fork" or "spawn") that never outlives
    the test. Children are daemons, and any still alive at teardown are killed: multiprocessing
    joins non-daemon children when pytest exits, so one stuck on a barrier would hang the run."""
    started: list[BaseProcess] = []

    def start(method: str, target: Callable[..., Any], *args: Any) -> BaseProcess:
        process = multiprocessing.get_context(method).Process(target=target, args=args, daemon=True)
        process.start()
        started.append(process)
        return process

    yield start
    for process in started:
        if process.is_alive():
            process.kill()
        process.join()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Parametrises a test over both backends, as Optuna runs its storage suite."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


# --- tiny sweeps: a real study through Ray, Optuna and the store, on a micro model ----------

MICRO_MODEL = {
    "preset": None,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_layers": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "max_position_embeddings": 64,
    "tie_embeddings": False,
}


@pytest.fixture(scope="session")
def sweep_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenizer and token cache for every tiny sweep of the session."""
    return tmp_path_factory.mktemp("sweep-cache")


@pytest.fixture(scope="session")
def write_tiny_sweep(data_root: Path, sweep_cache_dir: Path):
    """write_tiny_sweep(dir, **overrides) -> path of a sweep.yaml for a minutes-long study.

    Overrides are dotted paths into the default sweep.yaml (e.g. "stages.teachers.trials").
    """
    import copy

    import yaml

    repo = Path(__file__).resolve().parents[1]
    default = yaml.safe_load((repo / "sweep.yaml").read_text())

    def write(directory: Path, **overrides: object) -> Path:
        doc = copy.deepcopy(default)
        doc["data"].update(
            root=str(data_root),
            vocab_size=500,
            seq_length=32,
            max_train_tokens=16_000,
            max_eval_tokens=4_000,
            blimp_pairs_per_paradigm=4,
            cache_dir=str(sweep_cache_dir),
        )
        doc["model"] = dict(MICRO_MODEL)
        doc["training"].update(batch_size=16, warmup_steps=2)
        doc["evaluation"]["glue"]["stages"] = []
        # The five stages of the first release, named after their kinds and without `kind:`
        # or inputs: the old sweep.yaml format, which keeps working. Overrides of "stages"
        # declare other layouts (tests/sweep/test_stages.py).
        teachers = copy.deepcopy(default["stages"]["teachers"])
        students = copy.deepcopy(default["stages"]["students_k2"])
        for stage in (teachers, students):
            for key in ("kind", "ensemble"):
                stage.pop(key, None)
            stage.update(trials=3, epochs=2)
            stage["space"]["batch_size"] = 16
            # no early stopping: counts downstream (ensemble K, baselines) stay deterministic;
            # tests/sweep/test_runner.py covers ASHA on its own
            stage["scheduler"] = {"type": "none"}
        doc["stages"] = {
            "teachers": teachers,
            "ensemble": {"k": 2, "metric": "dev_loss"},
            "students": students,
            "baselines": {"top_n": 2, "epochs": 2},
            "repeats": {"seeds": 2, "epochs": 2},
        }
        for dotted, value in overrides.items():
            *parents, leaf = dotted.replace("__", ".").split(".")
            node = doc
            for key in parents:
                node = node[key]
            node[leaf] = value
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "sweep.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray (2 CPUs) for the in-process sweeps of the session, started as `sweep run`
    starts its own (sweep.local_ray), under $SWEEP_TEST_CPU_LOAD busy processes (CI: 8)."""
    import ray

    from sweep.local_ray import start_local_ray
    from tests.cpu_load import cpu_load, load_from_env

    with cpu_load(load_from_env()):
        start_local_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture
def cpu_load_at_start() -> Iterator[None]:
    """$SWEEP_TEST_CPU_LOAD busy processes (CI: 8) for the first 90 s of a test that starts
    `sweep run` processes: the window in which their local Ray comes up."""
    from tests.cpu_load import cpu_load, load_from_env

    with cpu_load(load_from_env(), seconds=90):
        yield


@pytest.fixture(scope="session")
def tiny_study(ray_local: None, write_tiny_sweep, tmp_path_factory: pytest.TempPathFactory):
    """A real five-stage study, run as a user would: --stage teachers, --stage students, rest.

    Returns a namespace with the config, the store URL and the trial counts seen after
    each partial run, for tests of the study, the store readers and the analysis.
    """
    from types import SimpleNamespace

    from sweep.config import load_sweep_config
    from sweep.study import run_study

    # tracking as a user would set it (test_study checks the trials' curves follow it)
    path = write_tiny_sweep(
        tmp_path_factory.mktemp("tiny-study"), tracking__log_every=4, tracking__eval_every=12
    )
    config = load_sweep_config(path)
    from sweep.store import read_sweeps

    seen, status = {}, {}
    for stage in ("teachers", "students", None):
        run_study(config, stage=stage)
        seen[stage or "all"] = _stage_counts(config.storage or "", config.name)
        status[stage or "all"] = read_sweeps(config.storage or "")["status"].iloc[0]
    return SimpleNamespace(config=config, url=config.storage, path=path, seen=seen, status=status)


def _stage_counts(url: str, sweep: str) -> dict[str, int]:
    from sweep.store import read_trials

    trials = read_trials(url, sweep)
    return trials.groupby("stage").size().to_dict() if len(trials) else {}
