"""The study `sweep run` executes: the stages sweep.yaml declares, in order.

Each declared stage is planned by its kind's planner (sweep.stages.PLANNERS): trial stages
become one `run_stage` each, an ensemble stage is a selection recorded in the store.
Provenance is explicit: students link to their ensemble's teacher trials (and name the
ensemble stage), baselines to the student config they control for, repeats and the
reference to the config they re-seed. A finished study grows: more trials or seeds run
only the new trials.
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
from typing import Any

from rich.console import Console

from sweep.cluster_fit import cluster_resource_problems, local_resource_problems
from sweep.config import SeededStage, StageKind, StudentsStage, SweepConfig
from sweep.errors import LeaseLost, SweepError
from sweep.lease import LEASE_TIMEOUT_S, SweepLease
from sweep.progress import Board
from sweep.ray_probe import wait_for_ray_head
from sweep.runner import StageInterrupted, StageOutcome, StageSpec, StopNotice, run_stage
from sweep.search import OBJECTIVE
from sweep.stages import PLANNERS, EnsembleSelection, PlanContext
from sweep.stages.rounds import next_round
from sweep.store import StageStatus, Store, SweepStatus, TrialStatus, ensemble_label
from sweep.tracking import tracker_callbacks
from trainers.errors import TrainerError

__all__ = ["StudyResult", "code_version", "run_study"]

_INPUT_FIELDS = ("teachers", "ensemble", "students", "sources")


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
    """Run every declared stage (or `stage` alone) of the study, recording it in the store.

    A stage already complete in the store is skipped, unless the config grew it (more
    trials, seeds or top_n): then only the new trials run. `rerun` (with `stage`) discards
    that stage's trials and Optuna study and runs it again; only the last stage in the
    store can be re-run, so no later stage is left orphaned.

    The run holds the sweep's lease (sweep.lease) from before its first write to its end;
    a refusal before that writes nothing, and a failure after it marks the sweep FAILED
    with the reason, so no sweep stays RUNNING without a driver.
    """
    if stage is not None and stage not in config.stages:
        raise SweepError(
            f"--stage: no stage named {stage!r} in {config.source or 'the sweep'}; "
            f"its stages are {', '.join(config.stages)}"
        )
    if rerun and stage is None:
        raise SweepError("--rerun: name the stage to re-run with --stage NAME")
    console = console or Console(stderr=True)
    # a local Ray is this machine: a trial it can never place would wait forever
    unplaceable = list(local_resource_problems(config, [stage] if stage else None))
    if unplaceable:
        raise SweepError("\n".join(unplaceable))
    if config.ray_address and config.ray_address != "local":
        # before any write: a head that never answers is refused, in bounded time
        wait_for_ray_head(config.ray_address, say=lambda line: console.print(line, highlight=False))
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
        _check_prerequisites(config, store, existing.id if existing else None, stage)
    if rerun and stage is not None and existing is not None:
        _discard_stage(config, store, existing.id, stage)
    sweep_id = store.upsert_sweep(
        config.name,
        config=config.resolved_json(),
        config_hash=config.config_hash(),
        code_version=code_version(),
    )
    result = StudyResult(sweep_id)
    names = list(config.stages)
    to_run = [stage] if stage else names
    console.print(f"store: {store.masked_url}", highlight=False)
    board = Board(console)
    ctx = PlanContext(config, store, sweep_id)
    running: dict[str, int] = {}  # the stage running now, marked INTERRUPTED on Ctrl-C
    try:
        _prepare_data(config, console)
        for name in to_run:  # refuse what cannot run (a corpus too small) before any trial
            check = PLANNERS[config.stages[name].kind].check
            if check is not None:
                check(ctx, name, config.stages[name])
        store.set_sweep_status(sweep_id, SweepStatus.RUNNING)
        with _ray(config, console), board.live():
            _check_nodes_fit(config, to_run, board)
            for name in to_run:
                for needed in _ensembles_needed(config, name):
                    if not _stage_complete(store, sweep_id, needed):
                        # An ensemble is a selection, not trials: derive it when a later
                        # stage runs alone on a store with finished teachers.
                        result.outcomes.append(_select(ctx, needed, board))
                if config.stages[name].kind == StageKind.ENSEMBLE:
                    if _stage_complete(store, sweep_id, name):
                        result.skipped.append(name)
                    elif name not in {o.name for o in result.outcomes}:
                        result.outcomes.append(_select(ctx, name, board))
                    continue
                declared = config.stages[name]
                if isinstance(declared, SeededStage) and declared.sequential:
                    outcome = _run_rounds(ctx, name, board, console, running)
                else:
                    outcome = _run_trials(ctx, name, board, console, running)
                if outcome is None:
                    result.skipped.append(name)
                else:
                    result.outcomes.append(outcome)
    except (KeyboardInterrupt, StageInterrupted):
        if lease.lost.is_set():  # taken over: the new driver owns every row now
            raise SweepError(lease.lost_message()) from None
        board.stop_requested()
        if "stage_id" in running:
            store.set_stage_status(running["stage_id"], StageStatus.INTERRUPTED)
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
    done = all(_stage_complete(store, sweep_id, n) for n in names)
    store.set_sweep_status(sweep_id, SweepStatus.COMPLETE if done else SweepStatus.PARTIAL)
    return result


def _check_nodes_fit(config: SweepConfig, to_run: list[str], board: Board) -> None:
    """Trials no node can place: refused on a local Ray (it never grows), said at once and
    kept on the board on a cluster (an autoscaler may add a node that fits)."""
    import ray

    lines = cluster_resource_problems(config, to_run, ray.nodes())
    if not lines:
        return
    if not config.ray_address or config.ray_address == "local":
        raise SweepError("\n".join(lines))
    for line in lines:
        board.warn(f"{line}; its trials wait until such a node joins")


def _check_prerequisites(
    config: SweepConfig, store: Store, sweep_id: int | None, stage: str
) -> None:
    """`--stage NAME` alone needs the trial stages it reads finished (an ensemble it needs
    is derived from finished teachers): refuse before any write, with the stage's message."""
    for needed in _trial_inputs(config, stage):
        if sweep_id is None or not _stage_complete(store, sweep_id, needed):
            raise SweepError(
                f"stage {needed!r} has not finished in the store; "
                f"run `sweep run --stage {needed}` first"
            )


def _trial_inputs(config: SweepConfig, name: str) -> list[str]:
    """The trial stages a stage reads, looking through ensembles to their teachers."""
    out: list[str] = []
    for value in _inputs(config.stages[name]).values():
        for ref in value if isinstance(value, list) else [value]:
            if config.stages[ref].kind == StageKind.ENSEMBLE:
                out += _trial_inputs(config, ref)
            else:
                out.append(ref)
    return list(dict.fromkeys(out))


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


def _ensemble_text(ctx: PlanContext, name: str, stage_id: int) -> str:
    """'teachers #2 (dev_loss 3.412), #0 (dev_loss 3.450)': what an ensemble stage chose."""
    declared = ctx.config.stages[name]
    teachers_stage = getattr(declared, "teachers", None) or ""
    metric = getattr(declared, "metric", "")
    teachers = ctx.store.get_stage(ctx.sweep_id, teachers_stage)
    numbers = {t.id: t.number for t in ctx.store.trials(teachers.id)} if teachers else {}
    members = ctx.store.ensemble_members(stage_id)
    return ensemble_label(
        [(teachers_stage, numbers.get(m.trial_id, "?")) for m in members],
        [f" ({metric} {m.value:.4f})" if m.value is not None else "" for m in members],
    )


def _run_rounds(
    ctx: PlanContext, name: str, board: Board, console: Console, running: dict[str, int]
) -> StageOutcome | None:
    """A seeds: auto stage: rounds of seeds until its comparisons are decided or max_seeds
    (sweep.stages.rounds); None when the store already held every round it needs."""
    declared = ctx.config.stages[name]
    assert isinstance(declared, SeededStage)
    ran: list[StageOutcome] = []
    last = -1
    while True:
        held, finished = _seeds_held(ctx.store, ctx.sweep_id, name)
        cap = _repeat_seeds_held(ctx) if declared.kind == StageKind.REFERENCE else None
        step = next_round(declared, held, finished, lambda: _look(ctx, name), cap=cap)
        board.note(name, step.why)
        if step.seeds is None or step.seeds <= last:  # never the same round twice
            break
        last = ctx.round_seeds[name] = step.seeds
        outcome = _run_trials(
            ctx, name, board, console, running, label=f"{name} (to {step.seeds} seeds)"
        )
        if outcome is not None:
            ran.append(outcome)
    if not ran:
        return None
    counts: dict[TrialStatus, int] = {}
    for outcome in ran:
        for status, n in outcome.counts.items():
            counts[status] = counts.get(status, 0) + n
    return StageOutcome(name, counts, sum(o.ran for o in ran))


def _seeds_held(store: Store, sweep_id: int, name: str) -> tuple[int, bool]:
    """Distinct seeds a stage's trials hold, and whether its last round finished."""
    row = store.get_stage(sweep_id, name)
    if row is None:
        return 0, True
    trials = store.trials(row.id)
    finished = row.status == StageStatus.COMPLETE and all(
        t.status != TrialStatus.RUNNING for t in trials
    )
    return len({t.seed for t in trials}), finished


def _repeat_seeds_held(ctx: PlanContext) -> int | None:
    """Seeds the repeats stages hold (a reference seed pairs only with those); None: none ran."""
    held = [
        _seeds_held(ctx.store, ctx.sweep_id, n)[0] for n in ctx.config.stages_of(StageKind.REPEATS)
    ]
    return max(held) if any(held) else None


def _look(ctx: PlanContext, name: str) -> tuple[bool, str]:
    """Read the store as the report does: are the comparisons this stage's seeds feed settled?"""
    from analysis.load import load_frames
    from analysis.sequential import stage_look

    look = stage_look(load_frames(ctx.store, ctx.config.name), name)
    said = "; ".join(look.decided) or "nothing decided"
    if look.open:
        said += f"; open: {'; '.join(look.open)}"
    return look.settled, said


def _run_trials(
    ctx: PlanContext,
    name: str,
    board: Board,
    console: Console,
    running: dict[str, int],
    *,
    label: str | None = None,
) -> StageOutcome | None:
    """Plan and run a trial stage; None when the store already holds all its trials."""
    config, store, sweep_id = ctx.config, ctx.store, ctx.sweep_id
    declared = config.stages[name]
    spec = PLANNERS[declared.kind].plan(ctx, name, declared)
    assert isinstance(spec, StageSpec)
    row = store.get_stage(sweep_id, name)
    finished = _finished_trials(store, row.id) if row is not None else 0
    if row is not None and row.status == StageStatus.COMPLETE:
        if finished >= spec.total:
            return None
        console.print(
            f"stage {name}: {finished} trials in the store, {spec.total} configured; "
            f"running the {spec.total - finished} new ones",
            highlight=False,
        )
    stage_id = store.upsert_stage(
        sweep_id,
        name,
        kind=declared.kind,
        inputs=_inputs(declared),
        optuna_study=spec.study_name,
        objective_name=OBJECTIVE,
    )
    if spec.total == 0:
        store.set_stage_status(stage_id, StageStatus.COMPLETE)
        return StageOutcome(name)
    running["stage_id"] = stage_id
    outcome = run_stage(
        spec,
        store=store,
        stage_id=stage_id,
        storage_path=_storage_path(config),
        progress=board.add(label or name, spec.total, spec.context.epochs),
        on_change=board.refresh,
        callbacks=[
            StopNotice(board.stop_requested),
            *tracker_callbacks(config.tracking, sweep=config.name, stage=name),
        ],
    )
    running.pop("stage_id")
    failed = outcome.counts.get(TrialStatus.FAILED, 0)
    if failed and failed == sum(outcome.counts.values()):
        # the cause, not what a later stage would blame ("only 0 teacher trials ...")
        raise SweepError(
            f"stage {name}: all {failed} trials failed; {_first_error(store, stage_id)}"
        )
    return outcome


def _first_error(store: Store, stage_id: int) -> str:
    """The first failed trial's stored error, as one line."""
    failed = sorted(
        (t for t in store.trials(stage_id) if t.status == TrialStatus.FAILED),
        key=lambda t: t.number,
    )
    if not failed:
        return "no error was recorded"
    first = failed[0]
    # the recorder stores the root error's line first, then the traceback
    shown = next((ln.strip() for ln in (first.error or "").splitlines() if ln.strip()), None)
    return f"the first (#{first.number}) says: {shown or 'no error text'}"


def _select(ctx: PlanContext, name: str, board: Board) -> StageOutcome:
    """Record an ensemble stage's pick of teachers."""
    declared = ctx.config.stages[name]
    selection = PLANNERS[declared.kind].plan(ctx, name, declared)
    assert isinstance(selection, EnsembleSelection)
    stage_id = ctx.store.upsert_stage(
        ctx.sweep_id, name, kind=declared.kind, inputs=_inputs(declared)
    )
    ctx.store.set_ensemble(stage_id, selection.members)
    ctx.store.set_stage_status(stage_id, StageStatus.COMPLETE)
    board.note(name, _ensemble_text(ctx, name, stage_id))
    return StageOutcome(name, {TrialStatus.COMPLETE: len(selection.members)})


def _ensembles_needed(config: SweepConfig, name: str) -> list[str]:
    """The ensemble stages a stage's trials distil from (students, and repeats of students)."""
    declared = config.stages[name]
    students = [name] if declared.kind == StageKind.STUDENTS else []
    students += getattr(declared, "sources", None) or []
    return [
        s.ensemble
        for s in (config.stages[n] for n in students)
        if isinstance(s, StudentsStage) and s.ensemble is not None
    ]


def _inputs(declared: Any) -> dict[str, Any]:
    """The stages a declared stage reads, as stored with its row."""
    return {k: v for k in _INPUT_FIELDS if (v := getattr(declared, k, None)) is not None}


def _finished_trials(store: Store, stage_id: int) -> int:
    return sum(t.status != TrialStatus.RUNNING for t in store.trials(stage_id))


def _discard_stage(config: SweepConfig, store: Store, sweep_id: int, name: str) -> None:
    """Delete a stage's trials and its Optuna study, refusing if a later stage used them."""
    import optuna

    names = list(config.stages)
    later = [n for n in names[names.index(name) + 1 :] if store.get_stage(sweep_id, n)]
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


def _prepare_data(config: SweepConfig, console: Console) -> None:
    """Tokenizer and token caches once, on the driver, before trials start in parallel."""
    from trainers.data import prepare_corpus

    with console.status("preparing tokenizer and token caches"):
        prepared = prepare_corpus(config.data)
    for line in prepared.repaired:  # a damaged cache entry, found and rebuilt
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _storage_path(config: SweepConfig) -> str:
    out = config.output_dir or "runs"
    if "://" not in out:
        Path(out).mkdir(parents=True, exist_ok=True)
    return f"{out.rstrip('/')}/{config.name}"


@contextmanager
def _ray(config: SweepConfig, console: Console) -> Iterator[None]:
    """Join the configured cluster, or start a local Ray that this process owns."""
    import ray

    from sweep.local_ray import LocalRayError, start_local_ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    owned = not ray.is_initialized()
    local = not config.ray_address or config.ray_address == "local"
    if owned and local:
        try:
            with _loopback_only(local):
                start_local_ray(
                    on_retry=lambda why: console.print(
                        f"local Ray did not start ({why}); trying once more", highlight=False
                    ),
                    configure_logging=True,
                    _node_ip_address="127.0.0.1",
                )
        except LocalRayError as exc:
            raise SweepError(
                f"cannot start a local Ray, twice ({exc}); the machine may be too busy or "
                "short of memory: retry when it is quieter, or see Ray's logs in "
                "/tmp/ray/session_latest/logs"
            ) from None
    elif owned:
        wait_for_ray_head(config.ray_address or "")  # Ray's own join would retry forever
        try:
            ray.init(
                address=config.ray_address,
                log_to_driver=False,
                logging_level=logging.ERROR,
                configure_logging=True,
            )
        except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SweepError(
                f"ray_address: cannot join the Ray cluster at {config.ray_address} ({first}); "
                "check the address and that the cluster is up, or leave it unset for a local Ray"
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
