"""Many writers: 8 processes x 300 metric writes race to create the store and then write,
some on the same keys; nothing is lost, nothing doubled, nothing fails with 'locked'.
(benchmarks/store_writes.py prints the writes/s.)"""

from __future__ import annotations

import multiprocessing
import queue

import sqlalchemy as sa
from store_scenarios import write_metrics

from sweep.store import Store, current_revision, head_revision
from sweep.store.models import TrialMetric

WORKERS = 8
WRITES = 300


def test_eight_processes_lose_and_duplicate_nothing(store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    errors = ctx.Queue()
    workers = [
        ctx.Process(target=write_metrics, args=(store_url, w, WRITES, barrier, errors))
        for w in range(WORKERS)
    ]
    for process in workers:
        process.start()
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
