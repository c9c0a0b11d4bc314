"""Store write throughput: N processes x M metric writes (one transaction each), as the
concurrency test runs them, against SQLite and PostgreSQL. Prints figures, asserts nothing.

    python benchmarks/store_writes.py                       # SQLite in a temp dir + local PostgreSQL
    python benchmarks/store_writes.py --workers 8 --writes 300 --postgres URL
    python benchmarks/store_writes.py --no-postgres
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from sweep.store import Store, mask_url

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _writer(url: str, worker: int, writes: int, barrier: Any, results: Any) -> None:
    store = Store(url)
    sweep = store.upsert_sweep("bench", config={}, config_hash="h", code_version="bench")
    stage = store.upsert_stage(sweep, "teachers")
    trial = store.upsert_trial(stage, worker, role="teacher", params={}, seed=0)
    barrier.wait()
    start = time.perf_counter()
    for i in range(writes):
        store.add_metrics(trial, i, {"dev_loss": 1.0 / (i + 1)})
    results.put((worker, start, time.perf_counter()))
    store.dispose()


def run(url: str, workers: int, writes: int) -> float:
    """Writes per second over the wall time from the first write to the last."""
    Store(url).dispose()  # migrate once, outside the timing
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(workers), ctx.Queue()
    processes = [
        ctx.Process(target=_writer, args=(url, w, writes, barrier, results)) for w in range(workers)
    ]
    for process in processes:
        process.start()
    spans = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    wall = max(end for _, _, end in spans) - min(start for _, start, _ in spans)
    return workers * writes / wall


@contextmanager
def _postgres_schema(server: str) -> Iterator[str]:
    """A fresh schema on the server, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(server)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in server else "?"
    try:
        yield f"{server}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    total = args.workers * args.writes
    print(f"{args.workers} processes x {args.writes} metric writes ({total} transactions)")
    for workers in (args.workers, 1):
        with tempfile.TemporaryDirectory() as tmp:
            rate = run(f"sqlite:///{Path(tmp) / 'bench.db'}", workers, args.writes)
        print(f"  sqlite      {workers} process(es)  {rate:8.0f} writes/s")
    if not args.no_postgres:
        for workers in (args.workers, 1):
            with _postgres_schema(args.postgres) as url:
                rate = run(url, workers, args.writes)
            print(f"  postgresql  {workers} process(es)  {rate:8.0f} writes/s")
        print(f"  (postgresql at {mask_url(args.postgres)})")


if __name__ == "__main__":
    main()
