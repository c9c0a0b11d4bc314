"""Many writers: 8 processes x 300 metric writes race to create the store and then write,
some on the same keys; nothing is lost, nothing doubled, nothing fails with 'locked'.
(benchmarks/store_writes.py prints the writes/s.)

Processes opening a new SQLite file together race to switch it to WAL; SQLite refuses one of
them at once, without busy waiting, in about one race in five (CI met it once in 400 runs).
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from store_scenarios import write_metrics

from sweep.store import Store, current_revision, head_revision
from sweep.store.connection import create_store_engine, parse_store_url
from sweep.store.models import TrialMetric

WORKERS = 8
WRITES = 300


def test_eight_processes_lose_and_duplicate_nothing(
    store_url: str, child_processes: Callable[..., BaseProcess]
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS, timeout=300)  # a worker that dies breaks it for the rest
    errors = ctx.Queue()
    workers = [
        child_processes("spawn", write_metrics, store_url, w, WRITES, barrier, errors)
        for w in range(WORKERS)
    ]
    for process in workers:
        process.join(timeout=300)
    failures = []
    while True:
        try:
            failures.append(errors.get_nowait())
        except queue.Empty:
            break
    assert failures == []
    assert [p.exitcode for p in workers] == [0] * WORKERS

    assert current_revision(store_url) == head_revision()  # the racing first opens agreed
    store = Store(store_url, upgrade=False)
    try:
        assert len(store.sweeps()) == 1
        stage = store.get_stage(store.sweeps()[0].id, "teachers")
        assert stage is not None
        trials = store.trials(stage.id)
        assert [t.number for t in trials] == [0, 1, 2, 3]  # workers w and w+4 share a trial
        with store.session(readonly=True) as session:
            total = session.scalar(sa.select(sa.func.count()).select_from(TrialMetric))
        # per trial: two workers' own series + one shared series, 300 iterations each
        assert total == 4 * 3 * WRITES
        for trial in trials:
            curves = store.trial_metrics(trial.id)
            assert sorted(curves) == list(range(WRITES))
            owners = {f"w{trial.number}", f"w{trial.number + 4}", "shared"}
            for iteration, values in curves.items():
                assert values == {name: float(iteration) for name in owners}
    finally:
        store.dispose()


ROUNDS = 30


def _open_new_file(url: str, barrier: Any, results: Any) -> None:  # a forked process
    try:
        engine = create_store_engine(parse_store_url(url))
        barrier.wait()
        with engine.connect() as connection:
            results.put(connection.exec_driver_sql("PRAGMA journal_mode").scalar())
        engine.dispose()
    except BaseException as exc:  # every outcome reaches the test, which reads one per worker
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_sqlite_file_together_all_connect_in_wal(
    tmp_path: Path, child_processes: Callable[..., BaseProcess]
) -> None:
    ctx = multiprocessing.get_context("fork")  # forked: the opens start within a millisecond
    for round_ in range(ROUNDS):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        barrier, results = ctx.Barrier(WORKERS, timeout=60), ctx.Queue()
        workers = [
            child_processes("fork", _open_new_file, url, barrier, results) for _ in range(WORKERS)
        ]
        outcomes = [results.get(timeout=60) for _ in workers]
        for process in workers:
            process.join(timeout=60)
        assert outcomes == ["wal"] * WORKERS, f"round {round_}: {outcomes}"
