"""The runner and its searcher tell the truth: pruned, failed, killed and resumed trials."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from sweep.config import GlueEvaluation, Resources, Scheduler, SweepConfig, load_sweep_config
from sweep.runner import StageSpec, run_stage
from sweep.search import PlannedTrial
from sweep.store import Store, read_evaluations, read_metrics, read_trials
from sweep.trainable import TrialContext
from trainers.config import RecipeConfig

pytestmark = pytest.mark.slow


def plan_stage(
    store: Store,
    config: SweepConfig,
    plans: list[PlannedTrial],
    *,
    name: str = "teachers",
    epochs: int = 2,
    cpu: float = 1,
    scheduler: Scheduler | None = None,
    glue: GlueEvaluation | None = None,
) -> tuple[int, StageSpec]:
    """A stage of fixed trials on the tiny sweep's data and model, and its store rows."""
    sweep_id = store.upsert_sweep(config.name, config={}, config_hash="h", code_version="test")
    stage_id = store.upsert_stage(sweep_id, name, optuna_study=f"{config.name}/{name}")
    training = config.training.model_copy(update={"alpha": 1.0})
    spec = StageSpec(
        sweep=config.name,
        name=name,
        seed=0,
        total=len(plans),
        role="teacher",
        context=TrialContext(
            recipe=RecipeConfig(data=config.data, model=config.model, training=training),
            epochs=epochs,
            glue=glue,
        ),
        resources=Resources(cpu=cpu),
        scheduler=scheduler,
        plans=plans,
    )
    return stage_id, spec


def test_pruned_failed_and_complete_are_recorded_truthfully(
    ray_local: None, write_tiny_sweep, tmp_path: Path
) -> None:
    """One trial learns, one barely moves (ASHA stops it), one diverges to NaN."""
    config = load_sweep_config(write_tiny_sweep(tmp_path))
    store = Store(config.storage or "")
    plans = [
        PlannedTrial({"lr": 3e-3, "grad_clip": 1.0}, seed=0, role="teacher"),
        PlannedTrial({"lr": 1e-7, "grad_clip": 1.0}, seed=0, role="teacher"),
        PlannedTrial({"lr": 1e6, "grad_clip": 1e6}, seed=0, role="teacher"),
    ]
    stage_id, spec = plan_stage(
        store,
        config,
        plans,
        cpu=2,  # one at a time: ASHA sees trial 0 before trial 1
        scheduler=Scheduler(type="asha", grace_period=1, reduction_factor=2),
    )
    outcome = run_stage(spec, store=store, stage_id=stage_id, storage_path=str(tmp_path / "runs"))
    assert outcome.counts == {"COMPLETE": 1, "PRUNED": 1, "FAILED": 1}

    rows = {t.number: t for t in store.trials(stage_id)}
    assert [rows[n].status for n in range(3)] == ["COMPLETE", "PRUNED", "FAILED"]
    assert "loss became" in (rows[2].error or "") and "epoch 1" in (rows[2].error or "")
    assert rows[0].objective is not None and rows[1].objective is None

    study = optuna.load_study(study_name="demo/teachers", storage=store.url)
    by_number = {t.number: t for t in study.trials}
    assert by_number[0].state.name == "COMPLETE"
    assert by_number[0].value == pytest.approx(rows[0].objective)
    # intermediate values are keyed by training tokens seen: an epoch is the same for all
    epoch_tokens = int(store.trial_metrics(rows[0].id)[1]["tokens_seen"])
    assert set(by_number[0].intermediate_values) == {epoch_tokens, 2 * epoch_tokens}
    assert by_number[1].state.name == "PRUNED"  # not COMPLETE with a partial value
    assert set(by_number[1].intermediate_values) == {epoch_tokens}
    assert by_number[2].state.name == "FAIL"

    # only the finished trial was evaluated on BLiMP
    evaluations = read_evaluations(store)
    assert set(evaluations["trial_id"]) == {rows[0].id}
    store.dispose()


def test_a_lost_database_connection_loses_no_result(
    ray_local: None, write_tiny_sweep, postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL drops every connection of the sweep every 0.8 s while trials run."""
    import threading
    import uuid

    import sqlalchemy as sa

    app = f"bs_{uuid.uuid4().hex[:10]}"
    url = f"{postgres_url}&application_name={app}"
    config = load_sweep_config(write_tiny_sweep(tmp_path), storage=url)
    store = Store(url)
    plans = [PlannedTrial({"lr": 3e-3}, seed=i, role="teacher") for i in range(4)]
    stage_id, spec = plan_stage(store, config, plans)
    admin = sa.create_engine(postgres_url.split("?")[0])
    stop = threading.Event()
    terminated: list[int] = []

    def drop_connections() -> None:
        while not stop.wait(0.8):
            with admin.begin() as conn:
                killed = conn.execute(
                    sa.text(
                        "select pg_terminate_backend(pid) from pg_stat_activity "
                        "where application_name = :app"
                    ),
                    {"app": app},
                ).fetchall()
            terminated.append(len(killed))

    dropper = threading.Thread(target=drop_connections, daemon=True)
    dropper.start()
    try:
        outcome = run_stage(spec, store=store, stage_id=stage_id, storage_path=str(tmp_path / "r"))
    finally:
        stop.set()
        dropper.join()
        admin.dispose()
    assert sum(terminated) >= 3, "the test never dropped a connection"
    assert outcome.counts == {"COMPLETE": 4}
    rows = store.trials(stage_id)
    assert sorted(t.number for t in rows) == [0, 1, 2, 3]
    assert {t.status for t in rows} == {"COMPLETE"}
    curves = store.trial_metrics(rows[0].id)
    assert set(curves) == {1, 2}
    store.dispose()


def test_an_error_after_a_result_is_stored_does_not_turn_it_into_a_failure(
    ray_local: None, write_tiny_sweep, tmp_path: Path
) -> None:
    """The recorder's bookkeeping after the store write (Optuna labels, the live display, the
    driver's on_change) can raise; Tune then reports the trial as errored. The stored
    COMPLETE and its objective stand (in CI a lost connection at that point once left a
    finished trial FAILED)."""
    config = load_sweep_config(write_tiny_sweep(tmp_path))
    store = Store(config.storage or "")
    plans = [PlannedTrial({"lr": 3e-3}, seed=i, role="teacher") for i in range(2)]
    stage_id, spec = plan_stage(store, config, plans, epochs=1, cpu=2)
    raised: list[int] = []

    def on_change() -> None:  # the driver's hook, run last in the recorder's _finish
        done = [t for t in store.trials(stage_id) if t.status == "COMPLETE"]
        if done and not raised:
            raised.append(done[0].number)
            raise RuntimeError("the display broke after the result was stored")

    outcome = run_stage(
        spec,
        store=store,
        stage_id=stage_id,
        storage_path=str(tmp_path / "r"),
        on_change=on_change,
    )

    assert raised, "the hook never raised after a stored result"
    rows = store.trials(stage_id)
    assert {t.status for t in rows} == {"COMPLETE"}, [(t.number, t.status, t.error) for t in rows]
    assert all(t.objective is not None for t in rows)
    assert outcome.counts == {"COMPLETE": 2}
    study = optuna.load_study(study_name="demo/teachers", storage=store.url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    store.dispose()


def test_glue_runs_where_enabled_and_lands_in_the_store(
    ray_local: None, write_tiny_sweep, tmp_path: Path
) -> None:
    config = load_sweep_config(write_tiny_sweep(tmp_path))
    store = Store(config.storage or "")
    glue = GlueEvaluation(
        stages=["repeats"], tasks=["mrpc", "rte"], max_train_examples=16, max_eval_examples=24
    )
    plans = [PlannedTrial({"lr": 3e-3}, seed=7, role="teacher")]
    stage_id, spec = plan_stage(store, config, plans, name="repeats", epochs=1, glue=glue)
    run_stage(spec, store=store, stage_id=stage_id, storage_path=str(tmp_path / "runs"))
    evaluations = read_evaluations(store)
    glue_rows = evaluations[evaluations.suite == "glue"].set_index(["task", "metric"])
    official = {("mrpc", "accuracy"), ("mrpc", "f1"), ("rte", "accuracy")}
    majority = {("mrpc", "majority_class"), ("mrpc", "majority_accuracy"), ("mrpc", "majority_f1"),
                ("rte", "majority_class"), ("rte", "majority_accuracy")}  # fmt: skip
    assert set(glue_rows.index) == official | majority
    assert (glue_rows["n"] == 24).all()
    assert glue_rows["value"].between(0, 1).all()
    trials = read_trials(store)
    assert trials.loc[0, "glue_mrpc_accuracy"] == glue_rows.loc[("mrpc", "accuracy"), "value"]
    store.dispose()


def test_optuna_dashboard_reads_the_studies(tiny_study) -> None:
    from optuna_dashboard import wsgi

    app = wsgi(tiny_study.url)
    status: list[str] = []
    body = app(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/api/studies",
            "QUERY_STRING": "",
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "8080",
            "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
        },
        lambda s, headers, *exc_info: status.append(s),
    )
    assert status[0].startswith("200")
    studies = json.loads(b"".join(body))["study_summaries"]
    names = {s["study_name"] for s in studies}
    assert {f"demo/{s}" for s in ("teachers", "students", "baselines", "repeats")} <= names


def _poll(db: Path, sql: str) -> list[tuple]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def test_kill_9_during_students_then_resume_completes_the_study(
    write_tiny_sweep, tmp_path: Path
) -> None:
    path = write_tiny_sweep(tmp_path, **{"stages.students.epochs": 3})
    config = load_sweep_config(path)
    db = tmp_path / "demo.db"
    sweep = [str(Path(sys.executable).parent / "sweep"), "run", str(path)]
    env = {**os.environ, "RAY_ADDRESS": ""}
    driver = subprocess.Popen(
        sweep, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    # wait until a student trial has checkpointed an epoch and is still running
    query = (
        "select count(*) from trial t join stage s on t.stage_id = s.id "
        "join artifact a on a.trial_id = t.id where s.name = 'students' and t.status = 'RUNNING'"
    )
    deadline = time.monotonic() + 420
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            rows = _poll(db, query)
            if rows and rows[0][0] > 0:
                break
            time.sleep(0.3)
        assert driver.poll() is None, "the sweep ended before it could be killed"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        _kill_group(driver.pid)

    interrupted = _poll(
        db,
        "select t.number from trial t join stage s on t.stage_id = s.id "
        "where s.name = 'students' and t.status = 'RUNNING'",
    )
    assert interrupted, "the kill left no interrupted trial"
    checkpointed = _poll(
        db,
        "select distinct t.number from trial t join stage s on t.stage_id = s.id "
        "join artifact a on a.trial_id = t.id where s.name = 'students' and t.status = 'RUNNING'",
    )

    refused = subprocess.run(sweep, capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    resumed = subprocess.run(
        [*sweep, "--resume"], capture_output=True, text=True, env=env, timeout=900
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    trials = read_trials(config.storage or "", config.name)
    cfg = config.stages
    expected = {
        "teachers": cfg["teachers"].trials,
        "students": cfg["students"].trials,
        "baselines": cfg["baselines"].top_n,
        # the best teacher, the best student and its alpha=1 control, each re-seeded
        "repeats": 3 * cfg["repeats"].seeds,
    }
    assert trials.groupby("stage").size().to_dict() == expected
    assert "RUNNING" not in set(trials["status"])
    for stage, count in expected.items():
        study = optuna.load_study(study_name=f"demo/{stage}", storage=config.storage)
        assert sorted(t.number for t in study.trials) == list(range(count))  # none twice
        assert all(t.state.is_finished() for t in study.trials)
        store_states = trials[trials.stage == stage].set_index("number")["status"].to_dict()
        for t in study.trials:
            assert {"FAIL": "FAILED"}.get(t.state.name, t.state.name) == store_states[t.number]
    # the interrupted students finished under their own numbers, with a full learning curve
    students = trials[trials.stage == "students"].set_index("number")
    for (number,) in interrupted:
        assert students.loc[number, "status"] in {"COMPLETE", "PRUNED"}
    # ... and those with a checkpoint resumed from it rather than from scratch: the resumed
    # Tune trial counts its own iterations from 1, so at the last epoch it has fewer
    curves = read_metrics(config.storage or "", config.name)
    for (number,) in checkpointed:
        trial_id = students.loc[number, "trial_id"]
        mine = curves[curves.trial_id == trial_id].pivot_table(
            index="iteration", columns="name", values="value"
        )
        last = mine.index.max()
        assert last == 3
        assert mine.loc[last, "training_iteration"] < last


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def test_ctrl_c_in_a_terminal_shows_trials_stops_at_once_and_leaves_a_resumable_run(
    write_tiny_sweep, tmp_path: Path
) -> None:
    """`sweep run` in a pseudo-terminal: the live board shows a row per trial and an ETA
    mid-run; Ctrl-C says "stopping..." and the resume command names the yaml as given."""
    path = write_tiny_sweep(tmp_path, **{"stages.teachers.epochs": 3})
    config = load_sweep_config(path)
    db = tmp_path / "demo.db"
    sweep = [str(Path(sys.executable).parent / "sweep"), "run", path.name, "--stage", "teachers"]
    env = {**os.environ, "RAY_ADDRESS": "", "TERM": "xterm-256color", "COLUMNS": "200"}
    terminal = _Terminal()
    driver = subprocess.Popen(
        sweep,
        stdin=terminal.slave,
        stdout=terminal.slave,
        stderr=terminal.slave,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )
    terminal.started()
    query = "select count(*) from artifact a join trial t on a.trial_id = t.id where t.status = 'RUNNING'"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            rows = _poll(db, query)
            if rows and rows[0][0] > 0:
                break
            time.sleep(0.3)
        assert driver.poll() is None, "the stage ended before Ctrl-C"
        time.sleep(2)  # the board redraws twice a second
        mid_run = terminal.text()
        driver.send_signal(signal.SIGINT)
        driver.wait(timeout=120)
    finally:
        _kill_group(driver.pid)
    out = terminal.close()
    assert driver.returncode == 2, out[-2000:]
    # mid-run: a row per trial (number, epoch/total) and a ticking elapsed time and ETA
    assert re.search(r"#0\s*│\s*RUNNING\s*│\s*[123]/3", mid_run), mid_run[-3000:]
    stage_rows = re.findall(
        r"teachers\s*│[^│]*│[^│]*│[^│]*│[^│]*│\s*(\d+:\d\d)\s*│\s*(\d+:\d\d)\s*│", mid_run
    )
    assert any(eta != "0:00" for _, eta in stage_rows), mid_run[-3000:]
    assert len({elapsed for elapsed, _ in stage_rows}) > 1  # elapsed ticks between redraws
    assert "stopping..." in out
    assert "sweep run sweep.yaml --stage teachers --resume" in out
    assert "Traceback" not in out
    status = _poll(db, "select status from sweep")
    assert status == [("INTERRUPTED",)]
    assert _poll(db, "select status from stage where name = 'teachers'") == [("INTERRUPTED",)]
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "sweep"), "status", "sweep.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert re.search(r"teachers\W+INTERRUPTED", shown.stdout), shown.stdout
    # nothing interrupted was recorded as pruned or failed: those are verdicts, not accidents
    assert not _poll(db, "select number from trial where status in ('PRUNED', 'FAILED')")

    resumed = subprocess.run(
        [*sweep, "--resume"], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = read_trials(config.storage or "", config.name)
    assert sorted(trials["number"]) == [0, 1, 2]
    assert set(trials["status"]) == {"COMPLETE"}
    assert _poll(db, "select status from stage where name = 'teachers'") == [("COMPLETE",)]


class _Terminal:
    """A pseudo-terminal (200 x 50) whose output a thread collects, ANSI codes removed."""

    def __init__(self) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=self._read, daemon=True)

    def started(self) -> None:
        os.close(self.slave)  # the child holds its own copy
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer closed
                return
            if not data:
                return
            self.chunks.append(data)

    def text(self) -> str:
        raw = b"".join(self.chunks).decode(errors="replace")
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r", "", raw)

    def close(self) -> str:
        self.thread.join(timeout=30)
        os.close(self.master)
        return self.text()


def test_an_adopted_trial_resumes_from_its_checkpoint_even_after_its_last_epoch(
    ray_local: None, write_tiny_sweep, tmp_path: Path
) -> None:
    """Killed after the final epoch's checkpoint, before the driver recorded the end."""
    import shutil

    from optuna.distributions import FloatDistribution

    from sweep.search import open_study
    from trainers.recipe import train

    config = load_sweep_config(write_tiny_sweep(tmp_path))
    store = Store(config.storage or "")
    stage_id, spec = plan_stage(store, config, [], epochs=2)
    # the interrupted run: a real 2-epoch teacher whose last checkpoint reached the store
    saved = tmp_path / "last-checkpoint"
    training = spec.context.recipe.training.model_copy(update={"epochs": 2, "lr": 3e-3})
    history = train(
        spec.context.recipe.model_copy(update={"training": training, "output_dir": tmp_path / "o"}),
        report=lambda m, d: shutil.copytree(d, saved, dirs_exist_ok=True),
        progress=False,
    ).history
    study = open_study(store.url, spec.study_name, seed=0, trials=1)
    study.ask({"lr": FloatDistribution(3e-3, 3e-3)})  # left RUNNING by the kill
    trial_id = store.upsert_trial(stage_id, 0, role="teacher", params={"lr": 3e-3}, seed=0)
    store.add_artifact(trial_id, str(saved), iteration=2)

    resumed = StageSpec(**{**spec.__dict__, "total": 1, "plans": None, "space": {}})
    outcome = run_stage(resumed, store=store, stage_id=stage_id, storage_path=str(tmp_path / "r"))
    assert outcome.counts == {"COMPLETE": 1}
    row = store.trials(stage_id)[0]
    assert row.status == "COMPLETE"
    assert row.objective == pytest.approx(history[-1]["dev_loss"])  # nothing was retrained
    curve = store.trial_metrics(row.id)
    assert curve[2]["training_iteration"] == 1  # one report, at epoch 2, from the checkpoint
    assert not read_evaluations(store).empty  # the end-of-trial BLiMP ran
    assert optuna.load_study(study_name=spec.study_name, storage=store.url).trials[0].value == (
        pytest.approx(history[-1]["dev_loss"])
    )
    store.dispose()
