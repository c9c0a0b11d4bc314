"""The staged study `sweep run` executes: teachers, ensemble, students, baselines, repeats.

Each trial stage is one `run_stage`; the ensemble stage is a selection recorded in the
store. Provenance is explicit: students link to their ensemble's teacher trials,
baselines to the student config they control for, repeats to the config they re-seed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from sweep.config import STAGE_ORDER, SearchStage, SweepConfig, TrialStage
from sweep.errors import LeaseLost, SweepError
from sweep.lease import LEASE_TIMEOUT_S, SweepLease
from sweep.progress import Board
from sweep.runner import StageInterrupted, StageOutcome, StageSpec, StopNotice, run_stage
from sweep.search import OBJECTIVE, PlannedTrial
from sweep.store import StageStatus, Store, SweepStatus, TrialRow, TrialStatus
from sweep.tracking import tracker_callbacks
from sweep.trainable import TrialContext
from trainers.config import RecipeConfig
from trainers.errors import TrainerError

__all__ = ["StudyResult", "code_version", "run_study"]

# Repeat seeds start here so they never coincide with a sweep trial's seed + number.
REPEAT_SEED_OFFSET = 10_000


@dataclass
class StudyResult:
    """What `sweep run` did, per stage."""

    sweep_id: int
    outcomes: list[StageOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def run_study(
    config: SweepConfig,
    *,
    stage: str | None = None,
    resume: bool = False,
    rerun: bool = False,
    console: Console | None = None,
    lease_timeout_s: float = LEASE_TIMEOUT_S,
) -> StudyResult:
    """Run every stage (or `stage` alone) of the study, recording it in the store.

    `rerun` (with `stage`) discards that stage's trials and Optuna study and runs it again;
    only the last stage in the store can be re-run, so no later stage is left orphaned.

    The run holds the sweep's lease (sweep.lease) from before its first write to its end;
    a refusal before that writes nothing, and a failure after it marks the sweep FAILED
    with the reason, so no sweep stays RUNNING without a driver.
    """
    if stage is not None and stage not in STAGE_ORDER:
        raise SweepError(f"--stage: unknown stage {stage!r}; use one of {', '.join(STAGE_ORDER)}")
    if rerun and stage is None:
        raise SweepError("--rerun: name the stage to re-run with --stage NAME")
    console = console or Console(stderr=True)
    store = Store(config.storage or "")
    lease = SweepLease(store, config.name, timeout_s=lease_timeout_s)
    try:
        lease.acquire()
        with lease.heartbeat():
            return _run_leased(config, store, lease, stage, resume, rerun, console)
    finally:
        lease.release()
        store.dispose()


def _run_leased(
    config: SweepConfig,
    store: Store,
    lease: SweepLease,
    stage: str | None,
    resume: bool,
    rerun: bool,
    console: Console,
) -> StudyResult:
    existing = store.get_sweep(config.name)
    if existing is not None and existing.config_hash != config.config_hash():
        raise SweepError(
            f"name: sweep {config.name!r} in {store.masked_url} was run with another config "
            f"(hash {existing.config_hash[:12]}); give this sweep a new name or another storage"
        )
    if existing is not None and not resume and _interrupted_trials(store, existing.id):
        raise SweepError(
            f"sweep {config.name!r} in {store.masked_url} has interrupted trials and no "
            f"driver is running it ({_last_driver(lease)}); continue it with "
            f"`{_resume_command(config, stage)}`, or rename the sweep to start afresh"
        )
    if lease.replaced is not None:
        console.print(
            f"took over sweep {config.name!r} from its last driver ({_last_driver(lease)})",
            highlight=False,
        )
    if stage is not None:
        _check_prerequisites(store, existing.id if existing else None, stage)
    if rerun and stage is not None and existing is not None:
        _discard_stage(config, store, existing.id, stage)
    sweep_id = store.upsert_sweep(
        config.name,
        config=config.resolved_json(),
        config_hash=config.config_hash(),
        code_version=code_version(),
    )
    result = StudyResult(sweep_id)
    stages = [stage] if stage else list(STAGE_ORDER)
    console.print(f"store: {store.masked_url}", highlight=False)
    board = Board(console)
    current: int | None = None  # the stage running now, marked INTERRUPTED on Ctrl-C
    try:
        _prepare_data(config, console)
        store.set_sweep_status(sweep_id, SweepStatus.RUNNING)
        with _ray(config), board.live():
            for name in stages:
                row = store.get_stage(sweep_id, name)
                if row is not None and row.status == StageStatus.COMPLETE:
                    result.skipped.append(name)
                    continue
                if name != "teachers" and not _stage_complete(store, sweep_id, "ensemble"):
                    # The ensemble is a selection, not trials: derive it when a later stage
                    # runs alone on a store with finished teachers.
                    ensemble_id = store.upsert_stage(sweep_id, "ensemble")
                    result.outcomes.append(_select_ensemble(config, store, sweep_id, ensemble_id))
                    board.note("ensemble", _ensemble_text(config, store, sweep_id, ensemble_id))
                    if name == "ensemble":
                        continue
                stage_id = store.upsert_stage(
                    sweep_id, name, optuna_study=f"{config.name}/{name}", objective_name=OBJECTIVE
                )
                spec = _stage_spec(config, store, sweep_id, name)
                if spec is None or spec.total == 0:
                    store.set_stage_status(stage_id, StageStatus.COMPLETE)
                    result.outcomes.append(StageOutcome(name))
                    continue
                progress = board.add(name, spec.total, spec.context.epochs)
                current = stage_id
                outcome = run_stage(
                    spec,
                    store=store,
                    stage_id=stage_id,
                    storage_path=_storage_path(config),
                    progress=progress,
                    on_change=board.refresh,
                    callbacks=[
                        StopNotice(board.stop_requested),
                        *tracker_callbacks(config.tracking, sweep=config.name, stage=name),
                    ],
                )
                current = None
                result.outcomes.append(outcome)
    except (KeyboardInterrupt, StageInterrupted):
        if lease.lost.is_set():  # taken over: the new driver owns every row now
            raise SweepError(lease.lost_message()) from None
        board.stop_requested()
        if current is not None:
            store.set_stage_status(current, StageStatus.INTERRUPTED)
        store.set_sweep_status(sweep_id, SweepStatus.INTERRUPTED)
        raise SweepError(
            f"interrupted; finished trials are in {store.masked_url}. "
            f"Continue with `{_resume_command(config, stage)}`"
        ) from None
    except LeaseLost:
        raise SweepError(lease.lost_message()) from None
    except BaseException as exc:
        if lease.lost.is_set():
            raise SweepError(lease.lost_message()) from None
        store.set_sweep_status(sweep_id, SweepStatus.FAILED, error=_failure_reason(exc))
        raise
    done = all(_stage_complete(store, sweep_id, n) for n in STAGE_ORDER)
    store.set_sweep_status(sweep_id, SweepStatus.COMPLETE if done else SweepStatus.PARTIAL)
    return result


def _check_prerequisites(store: Store, sweep_id: int | None, stage: str) -> None:
    """`--stage NAME` alone needs the search stages before it finished: refuse before any
    write, with the message the stage itself would give."""
    for needed in ("teachers", "students"):
        if STAGE_ORDER.index(needed) >= STAGE_ORDER.index(stage):
            return
        if sweep_id is None or not _stage_complete(store, sweep_id, needed):
            raise SweepError(
                f"stage {needed!r} has not finished in the store; "
                f"run `sweep run --stage {needed}` first"
            )


def _last_driver(lease: SweepLease) -> str:
    previous = lease.replaced
    if previous is None:
        return "none holds its lease"
    now = datetime.now(UTC)
    return (
        f"the last one, host {previous.host} pid {previous.pid}, "
        f"{lease.replaced_because or 'stopped'}; last heartbeat {previous.age_s(now):.0f} s ago"
    )


def _failure_reason(exc: BaseException) -> str:
    """The one line `sweep status` shows for a FAILED sweep."""
    text = str(exc).strip()
    if isinstance(exc, SweepError | TrainerError):
        return text or type(exc).__name__
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _resume_command(config: SweepConfig, stage: str | None) -> str:
    """`sweep run <the yaml, as it was given where it can tell> --resume`."""
    parts = ["sweep run"]
    if config.source is not None:
        # the loader keeps the resolved path: relative when below here, else absolute
        try:
            relative = os.path.relpath(config.source)
        except ValueError:  # another drive (Windows)
            relative = str(config.source)
        parts.append(str(config.source) if relative.startswith("..") else relative)
    if stage is not None:
        parts.append(f"--stage {stage}")
    parts.append("--resume")
    return " ".join(parts)


def _ensemble_text(config: SweepConfig, store: Store, sweep_id: int, stage_id: int) -> str:
    """'teachers #2 (dev_loss 3.412), #0 (dev_loss 3.450)': what the ensemble stage chose."""
    teachers = store.get_stage(sweep_id, "teachers")
    numbers = {t.id: t.number for t in store.trials(teachers.id)} if teachers else {}
    metric = config.stages.ensemble.metric
    picks = [
        f"#{numbers.get(m.trial_id, '?')}"
        + (f" ({metric} {m.value:.4f})" if m.value is not None else "")
        for m in store.ensemble_members(stage_id)
    ]
    return "teachers " + ", ".join(picks)


def _discard_stage(config: SweepConfig, store: Store, sweep_id: int, name: str) -> None:
    """Delete a stage's trials and its Optuna study, refusing if a later stage used them."""
    import optuna

    later = [n for n in STAGE_ORDER[STAGE_ORDER.index(name) + 1 :] if store.get_stage(sweep_id, n)]
    if later:
        raise SweepError(
            f"--rerun: stage {name!r} is followed by {', '.join(later)} in the store, which "
            "were built on its trials; re-run the last stage only, or start a new sweep name"
        )
    row = store.get_stage(sweep_id, name)
    if row is None:
        return
    # the ensemble stage has no study, and a stage may have died before asking one
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=f"{config.name}/{name}", storage=store.url)
    store.delete_stage(row.id)


def _stage_complete(store: Store, sweep_id: int, name: str) -> bool:
    row = store.get_stage(sweep_id, name)
    return row is not None and row.status == StageStatus.COMPLETE


def _interrupted_trials(store: Store, sweep_id: int) -> bool:
    """Trials left RUNNING by a killed or interrupted driver (to be re-run by --resume)."""
    return any(
        t.status == TrialStatus.RUNNING
        for stage in store.stages(sweep_id)
        for t in store.trials(stage.id)
    )


def _stage_spec(config: SweepConfig, store: Store, sweep_id: int, name: str) -> StageSpec | None:
    stages = config.stages
    seed = config.seed + 1000 * STAGE_ORDER.index(name)
    if name == "teachers":
        return _search_spec(config, name, stages.teachers, seed, role="teacher", teachers=())
    ensemble = _ensemble(store, sweep_id, name)
    if name == "students":
        return _search_spec(config, name, stages.students, seed, role="student", teachers=ensemble)
    if name == "baselines":
        students = _best(store, sweep_id, "students")[: stages.baselines.top_n]
        plans = [
            PlannedTrial({**s.params, "alpha": 1.0}, s.seed, "student", source_trial_id=s.id)
            for s in students
        ]
        return _fixed_spec(config, name, stages.baselines, seed, plans, teachers=())
    if name == "repeats":
        plans = []
        for role, source in (("teachers", "teacher"), ("students", "student")):
            best = _best(store, sweep_id, role)[:1]
            for s in best:
                params = {**s.params, "alpha": 1.0} if source == "teacher" else dict(s.params)
                plans += [
                    PlannedTrial(params, config.seed + REPEAT_SEED_OFFSET + i, source, s.id)
                    for i in range(stages.repeats.seeds)
                ]
        return _fixed_spec(config, name, stages.repeats, seed, plans, teachers=ensemble)
    return None


def _context(
    config: SweepConfig,
    name: str,
    epochs: int,
    teachers: tuple[tuple[int, str], ...],
    *,
    alpha1: bool,
) -> TrialContext:
    training = config.training.model_copy(update={"alpha": 1.0}) if alpha1 else config.training
    recipe = RecipeConfig(data=config.data, model=config.model, training=training)
    glue = config.evaluation.glue
    return TrialContext(
        recipe=recipe,
        epochs=epochs,
        teacher_uris=tuple(uri for _, uri in teachers),
        glue=glue if name in glue.stages and glue.tasks else None,
        log_every=config.tracking.log_every,
    )


def _search_spec(
    config: SweepConfig,
    name: str,
    stage: SearchStage,
    seed: int,
    *,
    role: str,
    teachers: tuple[tuple[int, str], ...],
) -> StageSpec:
    return StageSpec(
        sweep=config.name,
        name=name,
        seed=seed,
        total=stage.trials,
        role=role,
        context=_context(config, name, stage.epochs, teachers, alpha1=role == "teacher"),
        resources=stage.resources,
        max_failures=stage.max_failures,
        scheduler=stage.scheduler,
        space=dict(stage.space),
        teacher_ids=tuple(i for i, _ in teachers),
    )


def _fixed_spec(
    config: SweepConfig,
    name: str,
    stage: TrialStage,
    seed: int,
    plans: list[PlannedTrial],
    *,
    teachers: tuple[tuple[int, str], ...],
) -> StageSpec:
    return StageSpec(
        sweep=config.name,
        name=name,
        seed=seed,
        total=len(plans),
        role="student",
        context=_context(config, name, stage.epochs, teachers, alpha1=False),
        resources=stage.resources,
        max_failures=stage.max_failures,
        scheduler=None,
        plans=plans,
        teacher_ids=tuple(i for i, _ in teachers),
    )


def _best(store: Store, sweep_id: int, stage: str) -> list[TrialRow]:
    """Finished trials of a stage, best objective first."""
    row = store.get_stage(sweep_id, stage)
    if row is None or row.status != StageStatus.COMPLETE:
        raise SweepError(
            f"stage {stage!r} has not finished in the store; run `sweep run --stage {stage}` first"
        )
    trials = [
        t
        for t in store.trials(row.id)
        if t.status == TrialStatus.COMPLETE and t.objective is not None
    ]
    return sorted(trials, key=lambda t: (t.objective, t.number))


def _select_ensemble(
    config: SweepConfig, store: Store, sweep_id: int, stage_id: int
) -> StageOutcome:
    """The K best finished teachers (by the configured metric) become the ensemble."""
    k, metric = config.stages.ensemble.k, config.stages.ensemble.metric
    candidates = [t for t in _best(store, sweep_id, "teachers") if t.checkpoint_uri]
    if metric == "blimp_overall":  # higher is better; trials without a score are left out
        scored = [(t, _final_metric(store, t.id, metric)) for t in candidates]
        ranked: list[tuple[TrialRow, float]] = sorted(
            ((t, v) for t, v in scored if v is not None), key=lambda tv: -tv[1]
        )
    else:
        ranked = [(t, t.objective or 0.0) for t in candidates]
    if len(ranked) < k:
        raise SweepError(
            f"stages.ensemble.k: only {len(ranked)} teacher trials finished with a checkpoint, "
            f"{k} needed; lower k, run more teacher trials, or let teachers finish "
            "(stages.teachers.scheduler.type: none)"
        )
    members = [(t.id, rank, float(v or 0.0)) for rank, (t, v) in enumerate(ranked[:k], 1)]
    store.set_ensemble(stage_id, members)
    store.set_stage_status(stage_id, StageStatus.COMPLETE)
    return StageOutcome("ensemble", {"MEMBERS": len(members)})


def _final_metric(store: Store, trial_id: int, name: str) -> float | None:
    """A metric's value at the trial's last reported epoch."""
    curve = store.trial_metrics(trial_id)
    return curve[max(curve)].get(name) if curve else None


def _ensemble(store: Store, sweep_id: int, needed_by: str) -> tuple[tuple[int, str], ...]:
    row = store.get_stage(sweep_id, "ensemble")
    members = store.ensemble_members(row.id) if row is not None else []
    if not members:
        raise SweepError(
            f"stage {needed_by!r} needs the teacher ensemble; run `sweep run --stage ensemble` "
            "(after the teachers) first"
        )
    return tuple((m.trial_id, m.checkpoint_uri or "") for m in members)


def _prepare_data(config: SweepConfig, console: Console) -> None:
    """Tokenizer and token caches once, on the driver, before trials start in parallel."""
    from trainers.data import prepare_corpus

    with console.status("preparing tokenizer and token caches"):
        prepare_corpus(config.data)


def _storage_path(config: SweepConfig) -> str:
    out = config.output_dir or "runs"
    if "://" not in out:
        Path(out).mkdir(parents=True, exist_ok=True)
    return f"{out.rstrip('/')}/{config.name}"


@contextmanager
def _ray(config: SweepConfig) -> Iterator[None]:
    """Join the configured cluster, or start a local Ray that this process owns."""
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    owned = not ray.is_initialized()
    local = not config.ray_address or config.ray_address == "local"
    if owned:
        try:
            with _loopback_only(local):
                ray.init(
                    # "local": a new Ray of this process, never a stale cluster in /tmp/ray
                    address=config.ray_address or "local",
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    configure_logging=True,
                    **({"_node_ip_address": "127.0.0.1"} if local else {}),  # type: ignore[arg-type]
                )
        except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            where = "a local Ray" if local else f"the Ray cluster at {config.ray_address}"
            raise SweepError(
                f"ray_address: cannot start or join {where} ({first}); check the address "
                "and that the cluster is up, or leave it unset for a local Ray"
            ) from None
    try:
        yield
    finally:
        if owned:
            ray.shutdown()


@contextmanager
def _loopback_only(local: bool) -> Iterator[None]:
    """A local Ray whose GCS, raylet and workers listen on 127.0.0.1 only.

    On Linux Ray takes the machine's address even for a one-node run, and its servers then
    listen on every interface; its macOS/Windows mode (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0)
    keeps them on loopback. Ray reads that switch at import, so it is set on the imported
    constant too, and both are restored for a later cluster run in this process.
    tests/sweep/test_local_ray.py fails if a Ray upgrade changes this.
    """
    if not local:
        yield
        return
    from ray._private import ray_constants

    env = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    before_env, before = os.environ.get(env), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[env], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(env, None)
        else:
            os.environ[env] = before_env


def code_version() -> str:
    """The package version and, in a git checkout, the commit."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("babysweep")
    except PackageNotFoundError:
        v = "0+unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{v}+g{commit}" if commit else v
    except (OSError, subprocess.SubprocessError):
        return v
