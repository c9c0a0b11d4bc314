"""Trackers and finer curves: a real tiny stage logs to W&B (offline), MLflow (a local
SQLite store) and TensorBoard event files, and each is read back and compared with the store;
the per-step train loss and the dev loss within epochs land in the store, Optuna's
intermediate values (on the tokens axis) and every tracker, and the Optuna trials carry user
attributes."""

from __future__ import annotations

import struct
from pathlib import Path

import optuna
import pytest

from sweep.config import Resources, load_sweep_config
from sweep.runner import StageSpec, run_stage
from sweep.search import PlannedTrial
from sweep.store import Store, read_step_metrics, read_trials
from sweep.tracking import tracker_callbacks
from sweep.trainable import STEP_LOSS_NAME, TrialContext
from trainers.config import RecipeConfig

pytestmark = pytest.mark.slow

LOG_EVERY = 3
EVAL_EVERY = 5


def test_trackers_store_and_optuna_get_every_trial_curve(
    ray_local: None, write_tiny_sweep, tmp_path: Path
) -> None:
    tracking = {
        "log_every": LOG_EVERY,
        "eval_every": EVAL_EVERY,
        "wandb": {"mode": "offline", "project": "babysweep-test"},
        "mlflow": {},
        "tensorboard": {},
    }
    config = load_sweep_config(write_tiny_sweep(tmp_path, tracking=tracking))
    store = Store(config.storage or "")
    sweep_id = store.upsert_sweep(config.name, config={}, config_hash="h", code_version="test")
    stage_id = store.upsert_stage(sweep_id, "teachers", optuna_study=f"{config.name}/teachers")
    training = config.training.model_copy(update={"alpha": 1.0})
    spec = StageSpec(
        sweep=config.name,
        name="teachers",
        seed=0,
        total=1,
        role="teacher",
        context=TrialContext(
            recipe=RecipeConfig(data=config.data, model=config.model, training=training),
            epochs=2,
            log_every=config.tracking.log_every,
            eval_every=config.tracking.eval_every,
        ),
        resources=Resources(cpu=2),
        plans=[PlannedTrial({"lr": 3e-3}, seed=0, role="teacher")],
    )
    callbacks = tracker_callbacks(config.tracking, sweep=config.name, stage="teachers")
    outcome = run_stage(
        spec,
        store=store,
        stage_id=stage_id,
        storage_path=str(tmp_path / "runs"),
        callbacks=callbacks,
    )
    assert outcome.counts == {"COMPLETE": 1}

    # the store: the train loss every LOG_EVERY steps, over both epochs
    trial = store.trials(stage_id)[0]
    points = store.trial_step_metrics(trial.id, STEP_LOSS_NAME)
    steps = [s for s, _ in points]
    assert len(points) > 4 and all(s % LOG_EVERY == 0 for s in steps)
    assert steps == sorted(set(steps))
    frame = read_step_metrics(config.storage or "", config.name)
    assert sorted(frame["epoch"].unique()) == [1, 2]
    curve = store.trial_metrics(trial.id)
    dev = {epoch: row["dev_loss"] for epoch, row in curve.items()}
    final = read_trials(config.storage or "", config.name).iloc[0]

    # the store: the dev loss every EVAL_EVERY steps within epochs, and at each epoch's end
    dev_points = store.trial_step_metrics(trial.id, "dev_loss")
    ends = {int(curve[e]["step"]): e for e in (1, 2)}
    per_epoch = int(curve[1]["step"])
    within = [s for s in range(EVAL_EVERY, 2 * per_epoch, EVAL_EVERY) if s % per_epoch]
    assert [s for s, _ in dev_points] == sorted([*within, *ends])
    assert [v for s, v in dev_points if s in ends] == pytest.approx([dev[1], dev[2]])
    assert len(set(v for _, v in dev_points)) == len(dev_points)  # each a fresh evaluation

    # the report: a within-epoch train-loss curve, not just one point per epoch
    from analysis.load import load_frames
    from analysis.sections import cluster_section

    blocks = cluster_section(load_frames(config.storage or "", config.name)).blocks
    (block,) = [b for b in blocks if b.reading.startswith("Train loss every logged")]
    assert block.figure is not None
    xs = [x for trace in block.figure.data for x in trace.x if x is not None]
    assert sorted(xs) == [float(s) for s in steps]
    (block,) = [b for b in blocks if b.reading.startswith("Dev loss on the optimizer-step")]
    assert block.figure is not None
    xs = [x for trace in block.figure.data for x in trace.x if x is not None]
    assert sorted(xs) == [float(s) for s, _ in dev_points]

    # Optuna: what optuna-dashboard shows beside the objective
    study = optuna.load_study(study_name=f"{config.name}/teachers", storage=config.storage)
    # intermediate values: the same dev-loss curve, keyed by training tokens seen
    tokens = study.trials[0].intermediate_values
    assert sorted(tokens.values()) == pytest.approx(sorted(v for _, v in dev_points))
    assert [v for _, v in sorted(tokens.items())] == pytest.approx([v for _, v in dev_points])
    epoch_tokens = int(curve[1]["tokens_seen"])
    assert tokens[epoch_tokens] == pytest.approx(dev[1])
    assert tokens[2 * epoch_tokens] == pytest.approx(dev[2])
    assert len(tokens) == len(dev_points) > 2  # more than one point per epoch
    attrs = study.trials[0].user_attrs
    assert attrs["role"] == "teacher" and attrs["store_trial_id"] == trial.id
    assert attrs["checkpoint_uri"] == trial.checkpoint_uri
    assert attrs["blimp_overall"] == pytest.approx(final["blimp_overall"])
    if "test_loss" in curve[2]:  # the trial's final result carries it (issue 13)
        assert attrs["test_loss"] == pytest.approx(curve[2]["test_loss"])

    # MLflow: one run, tagged, with the step curve and the epoch metrics
    from mlflow import MlflowClient

    assert config.tracking.mlflow is not None
    client = MlflowClient(config.tracking.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(config.name)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    tags = run.data.tags
    assert (tags["stage"], tags["role"], tags["optuna_number"]) == ("teachers", "teacher", "0")
    assert run.data.params["lr"] == "0.003"
    history = client.get_metric_history(run.info.run_id, STEP_LOSS_NAME)
    _same_curve(sorted((m.step, m.value) for m in history), points)
    dev_history = sorted(
        client.get_metric_history(run.info.run_id, "dev_loss"), key=lambda m: m.step
    )
    _same_curve([(m.step, m.value) for m in dev_history], dev_points)
    blimp = client.get_metric_history(run.info.run_id, "blimp_overall")
    assert [m.value for m in blimp] == pytest.approx([final["blimp_overall"]])

    # TensorBoard: event files of the trial, read back from their records
    assert config.tracking.tensorboard is not None
    folder = Path(config.tracking.tensorboard.dir or "") / "teachers" / "trial_0"
    scalars = _tensorboard_scalars(folder)
    _same_curve(sorted(scalars[f"ray/tune/{STEP_LOSS_NAME}"]), points)
    _same_curve(sorted(scalars["ray/tune/dev_loss"]), dev_points)

    # W&B offline: the run's transaction log holds the same points, and its tags
    assert config.tracking.wandb is not None
    (run_dir,) = (Path(config.tracking.wandb.dir or "") / "wandb").glob("offline-run-*")
    history_rows, run_record = _wandb_records(next(run_dir.glob("*.wandb")))
    logged = sorted(
        (row["_step"], row[STEP_LOSS_NAME]) for row in history_rows if STEP_LOSS_NAME in row
    )
    _same_curve(logged, points)
    _same_curve(
        sorted((row["_step"], row["dev_loss"]) for row in history_rows if "dev_loss" in row),
        dev_points,
    )
    assert set(run_record.tags) == {"stage:teachers", "role:teacher"}
    assert run_record.display_name == "teachers-0"
    store.dispose()


def _same_curve(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)


def _tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """TFRecord framing (length, crc, data, crc) of tensorboardX's Event protos."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = {}
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert files, f"no event files in {folder}"
    for path in files:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def _wandb_records(path: Path) -> tuple[list[dict], object]:
    """W&B's transaction log: LevelDB log framing (32 KiB blocks, 7-byte record headers)
    after a 7-byte file header, each record a wandb_internal_pb2.Record."""
    import json

    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    block, header, offset = 32768, 7, 7
    chunks: list[bytes] = []
    records: list[Record] = []
    while offset + header <= len(data):
        left = block - (offset % block)
        if left < header:  # block trailer padding
            offset += left
            continue
        length, kind = struct.unpack("<HB", data[offset + 4 : offset + 7])
        payload = data[offset + header : offset + header + length]
        offset += header + length
        if kind == 0 and length == 0:
            continue
        chunks.append(payload)
        if kind in (1, 4):  # FULL or LAST
            records.append(Record.FromString(b"".join(chunks)))
            chunks = []
    rows, run = [], None
    for record in records:
        which = record.WhichOneof("record_type")
        if which == "history":
            row = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            rows.append(row)
        elif which == "run":
            run = record.run
    assert run is not None, f"no run record in {path}"
    return rows, run
