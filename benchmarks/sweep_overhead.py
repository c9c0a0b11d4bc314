"""How much of a sweep's wall time do the workers spend training? Prints, never asserts.

Runs a fixed stage of short trials (a micro LLaMA on babylm-mini, 1 CPU each) on a local
Ray with 2 workers and prints:
- worker utilisation = sum of trial busy time / (workers x wall time of the stage),
  where busy time is the trainable's own running time (Tune's time_total_s);
- per-trial start-up latency = the trainable's first line in the worker - the driver's
  on_trial_start (Tune reuses the two actors, so only the first two pay process start-up,
  which the cold-start figure shows).

    python benchmarks/sweep_overhead.py [--trials 8] [--epochs 2] [--tokens 40000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import ray
import yaml

from sweep.config import Resources, load_sweep_config
from sweep.runner import StageSpec, run_stage
from sweep.search import PlannedTrial
from sweep.store import Store, read_metrics, read_trials
from sweep.trainable import TrialContext
from trainers.config import RecipeConfig
from trainers.data import prepare_corpus

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=40_000, help="training tokens per epoch")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sweep-overhead-"))
    doc = yaml.safe_load((REPO / "sweep.yaml").read_text())
    doc["data"].update(
        max_train_tokens=args.tokens, max_eval_tokens=4000, blimp_pairs_per_paradigm=4
    )
    (work / "sweep.yaml").write_text(yaml.safe_dump(doc))
    config = load_sweep_config(work / "sweep.yaml")
    prepare_corpus(config.data)

    store = Store(config.storage or "")
    sweep_id = store.upsert_sweep("bench", config={}, config_hash="bench", code_version="bench")
    stage_id = store.upsert_stage(sweep_id, "teachers", optuna_study="bench/teachers")
    recipe = RecipeConfig(
        data=config.data,
        model=config.model,
        training=config.training.model_copy(update={"alpha": 1.0}),
    )
    plans = [
        PlannedTrial({"lr": 3e-3}, seed=i, role="teacher", source_trial_id=None)
        for i in range(args.trials)
    ]
    spec = StageSpec(
        sweep="bench",
        name="teachers",
        seed=0,
        total=args.trials,
        role="teacher",
        context=TrialContext(recipe=recipe, epochs=args.epochs),
        resources=Resources(cpu=1),
        plans=plans,
    )
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    start, start_unix = time.perf_counter(), time.time()
    run_stage(spec, store=store, stage_id=stage_id, storage_path=str(work / "runs"))
    wall = time.perf_counter() - start
    ray.shutdown()

    trials = read_trials(store)
    curves = read_metrics(store)
    busy, latency, first_start = [], [], []
    for _, trial in trials.iterrows():
        mine = curves[curves.trial_id == trial["trial_id"]].pivot_table(
            index="iteration", columns="name", values="value"
        )
        busy.append(float(mine["time_total_s"].iloc[-1]))
        latency.append(mine["worker_started_at"].iloc[0] - trial["started_at"].timestamp())
        first_start.append(mine["worker_started_at"].iloc[0])
    utilisation = sum(busy) / (args.workers * wall)
    tokens_per_s = curves[curves.name == "tokens_per_s"]["value"].median()
    print(
        f"trials: {len(trials)} x {args.epochs} epochs x {args.tokens} tokens, {args.workers} workers"
    )
    print(f"stage wall time: {wall:.1f} s  ({len(trials) / wall * 60:.1f} trials/min)")
    print(f"trial busy time: mean {statistics.mean(busy):.1f} s, total {sum(busy):.1f} s")
    print(f"worker utilisation: {utilisation:.1%}  (target >= 85%)")
    print(
        f"trial start-up latency: median {statistics.median(latency):.2f} s, "
        f"max {max(latency):.2f} s"
    )
    print(f"cold start (stage start -> first trial running): {min(first_start) - start_unix:.1f} s")
    print(f"training throughput per trial: median {tokens_per_s:,.0f} tokens/s")
    store.dispose()


if __name__ == "__main__":
    main()
