"""The Store: every write and read of a sweep's results, through one scoped-session helper."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from sweep.errors import LeaseLost, StoreError
from sweep.store.connection import (
    create_store_engine,
    describe_driver_error,
    mask_url,
    parse_store_url,
    reader_engine,
    retry_transient,
    sqlite_file,
    sqlite_slashes_hint,
    translate_driver_errors,
)
from sweep.store.cost import TrialCost
from sweep.store.migrate import ensure_schema
from sweep.store.models import (
    Artifact,
    EnsembleMemberModel,
    Evaluation,
    StageKind,
    StageModel,
    StageStatus,
    Sweep,
    SweepLease,
    SweepStatus,
    Trial,
    TrialMetric,
    TrialStatus,
    TrialStepMetric,
    TrialTeacher,
    utcnow,
)
from sweep.store.rows import (
    ArtifactRow,
    EnsembleMember,
    EvaluationRow,
    LeaseRow,
    StageRow,
    SweepRow,
    TrialRow,
)

__all__ = ["Store"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
_R = TypeVar("_R", bound="DataclassInstance")

_TERMINAL_SWEEP = {SweepStatus.COMPLETE, SweepStatus.FAILED, SweepStatus.INTERRUPTED}
_DIRECTIONS = ("minimize", "maximize")


class Store:
    """A sweep's results in one SQL database: SQLite file by default, PostgreSQL on a cluster.

    Opening a store migrates an empty or older database to the current schema (unless
    `upgrade=False`) and refuses one made by a newer babysweep. Every write is an upsert
    on a natural key, so replaying results after a crash adds nothing twice::

        store = Store("sqlite:///runs/demo.db")
        sweep_id = store.upsert_sweep("demo", config=cfg, config_hash=h, code_version="0.1.0")
        stage_id = store.upsert_stage(sweep_id, "teachers", optuna_study="demo/teachers")
        trial_id = store.upsert_trial(stage_id, 0, role="teacher", params={"lr": 7e-4}, seed=0)
        store.add_metrics(trial_id, 1, {"dev_loss": 3.2, "train_loss": 3.5})
        store.finish_trial(trial_id, TrialStatus.COMPLETE, objective=3.2)
    """

    def __init__(self, url: str, *, upgrade: bool = True) -> None:
        self.parsed_url = parse_store_url(url)
        self.url: str = self.parsed_url.render_as_string(hide_password=False)
        self.masked_url: str = mask_url(self.parsed_url)
        path = sqlite_file(self.parsed_url)
        if not upgrade and path is not None and not path.exists():
            raise StoreError(
                f"there is no store at {self.masked_url} (the file {path.resolve()} does not "
                "exist); check the path or run a sweep first" + sqlite_slashes_hint(self.parsed_url)
            )
        self.engine = create_store_engine(self.parsed_url)
        self._writes = sessionmaker(self.engine, expire_on_commit=False)
        self._reads = sessionmaker(reader_engine(self.engine), expire_on_commit=False)
        self._upserts: dict[tuple[Any, ...], Any] = {}
        self._fence: tuple[str, str] | None = None
        try:
            self.revision_before, self.revision = ensure_schema(
                self.engine, self.parsed_url, upgrade=upgrade
            )
        except BaseException:
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"Store({self.masked_url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url}  # engines do not pickle: reconnect on the other side

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], upgrade=False)  # type: ignore[misc]

    def dispose(self) -> None:
        """Close every pooled connection (call before forking, or when done)."""
        self.engine.dispose()

    # -- the one scoped-session helper ---------------------------------------------------

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A transaction: commit on success, roll back on error, always close; driver errors
        become StoreError naming the masked URL. `readonly=True` never takes a write lock."""
        with translate_driver_errors(self.parsed_url), self._transaction(readonly) as session:
            yield session

    @contextmanager
    def _transaction(self, readonly: bool) -> Iterator[Session]:
        session = (self._reads if readonly else self._writes)()
        try:
            yield session
            if not readonly:  # a reader just closes: the pool rolls back, objects stay loaded
                session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _run(
        self, work: Callable[[Session], T], *, readonly: bool = False, fenced: bool = True
    ) -> T:
        """Run `work` in one transaction, retried (connection.retry_transient) while writers
        collide and, for a store that was reachable, while the connection is lost.

        Once `fence` was called, a write first checks, in the same transaction, that this
        driver still holds the sweep's lease (LeaseLost otherwise), so a driver that was
        taken over never writes again."""
        fence = self._fence if fenced and not readonly else None

        def once() -> T:
            with self._transaction(readonly) as session:
                if fence is not None:
                    self._check_fence(session, *fence)
                return work(session)

        try:
            return retry_transient(once)
        except sa.exc.DBAPIError as exc:
            raise StoreError(describe_driver_error(exc, self.parsed_url)) from exc

    def _insert(self, model: Any) -> Any:
        """INSERT .. ON CONFLICT for this dialect (both spell it the same way)."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)

    def _upsert_returning_id(
        self, model: Any, values: dict[str, Any], *, keys: list[str], update: list[str]
    ) -> int:
        """One-row upsert (`_upsert_statement`), returning the row id."""
        stmt = self._upsert_statement(model, keys, update).values(values).returning(model.id)
        return self._run(lambda session: int(session.execute(stmt).scalar_one()))

    def _upsert_statement(self, model: Any, keys: Sequence[str], update: Sequence[str]) -> Any:
        """The one home of INSERT .. ON CONFLICT (keys) DO UPDATE SET update (DO NOTHING when
        `update` is empty). Built once per shape: the compiled form is cached, so a write
        costs little CPU."""
        statement_key = (model, tuple(keys), tuple(update))
        stmt = self._upserts.get(statement_key)
        if stmt is None:
            stmt = self._insert(model.__table__)
            if update:
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(keys),
                    set_={column: stmt.excluded[column] for column in update},
                )
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
            self._upserts[statement_key] = stmt
        return stmt

    def _upsert(
        self,
        session: Session,
        model: type[Any],
        rows: Sequence[dict[str, Any]],
        *,
        keys: Sequence[str],
        update: Sequence[str],
    ) -> None:
        """`_upsert_statement` once per row (executemany)."""
        session.execute(self._upsert_statement(model, keys, update), list(rows))

    # -- sweeps and stages ----------------------------------------------------------------

    def upsert_sweep(
        self, name: str, *, config: Mapping[str, Any], config_hash: str, code_version: str
    ) -> int:
        """The sweep's id, creating it (RUNNING) if new; a different config hash under the
        same name is refused, so two studies never mix in one sweep. The same hash (a study
        grown by more trials or seeds) updates the stored config and code version."""

        def work(session: Session) -> int:
            now = utcnow()
            values = {
                "name": name,
                "config": _jsonable(config),
                "config_hash": config_hash,
                "status": SweepStatus.RUNNING,
                "code_version": code_version,
                "created_at": now,
                "updated_at": now,
            }
            self._upsert(session, Sweep, [values], keys=["name"], update=[])
            row = session.execute(
                sa.select(Sweep.id, Sweep.config_hash).where(Sweep.name == name)
            ).one()
            if row.config_hash != config_hash:
                raise StoreError(
                    f"the sweep {name!r} in {self.masked_url} was run with another config "
                    f"(hash {row.config_hash[:12]}, now {config_hash[:12]}); rename the sweep "
                    "(`name:` in sweep.yaml) or use a fresh store"
                )
            # same study, maybe grown (more trials or seeds): keep the config that runs now
            session.execute(
                sa.update(Sweep)
                .where(Sweep.id == row.id)
                .values(config=_jsonable(config), code_version=code_version, updated_at=now)
            )
            return int(row.id)

        return self._run(work)

    def get_sweep_id(self, name: str) -> int | None:
        return self._run(
            lambda s: s.scalar(sa.select(Sweep.id).where(Sweep.name == name)), readonly=True
        )

    def get_sweep(self, name: str) -> SweepRow | None:
        def work(session: Session) -> SweepRow | None:
            sweep = session.scalar(sa.select(Sweep).where(Sweep.name == name))
            return None if sweep is None else _sweep_row(sweep)

        return self._run(work, readonly=True)

    def sweeps(self) -> list[SweepRow]:
        """All sweeps, oldest first."""
        return self._run(
            lambda s: [_sweep_row(x) for x in s.scalars(sa.select(Sweep).order_by(Sweep.id))],
            readonly=True,
        )

    def set_sweep_status(self, sweep_id: int, status: str, *, error: str | None = None) -> None:
        """RUNNING / COMPLETE / FAILED / INTERRUPTED; a terminal status sets finished_at.
        `error` says why it FAILED (replaced on every call, so a later success clears it)."""
        status = SweepStatus(status)
        finished = utcnow() if status in _TERMINAL_SWEEP else None
        values = {"status": status, "finished_at": finished, "updated_at": utcnow(), "error": error}
        self._update(Sweep, sweep_id, values, what="sweep")

    # -- the sweep lease: one driver per sweep --------------------------------------------

    def acquire_lease(
        self,
        sweep_name: str,
        *,
        owner: str,
        host: str,
        pid: int,
        pid_started: float | None,
        may_take_over: Callable[[LeaseRow], bool],
    ) -> tuple[bool, LeaseRow | None]:
        """Take the sweep's lease in one transaction: (True, the holder it replaced or None),
        or (False, the current holder) when `may_take_over(holder)` says it is still alive.

        SQLite's BEGIN IMMEDIATE and PostgreSQL's row lock (INSERT .. ON CONFLICT, then
        SELECT .. FOR UPDATE) make two drivers starting together see each other."""

        def work(session: Session) -> tuple[bool, LeaseRow | None]:
            now = utcnow()
            mine = {
                "sweep_name": sweep_name,
                "owner": owner,
                "host": host,
                "pid": pid,
                "pid_started": pid_started,
                "acquired_at": now,
                "heartbeat_at": now,
            }
            session.execute(
                self._insert(SweepLease)
                .values(mine)
                .on_conflict_do_nothing(index_elements=["sweep_name"])
            )
            held = session.scalars(
                sa.select(SweepLease).where(SweepLease.sweep_name == sweep_name).with_for_update()
            ).one()
            if held.owner == owner:
                return True, None
            holder = _lease_row(held)
            if not may_take_over(holder):
                return False, holder
            session.execute(
                sa.update(SweepLease).where(SweepLease.sweep_name == sweep_name).values(mine)
            )
            return True, holder

        return self._run(work, fenced=False)

    def renew_lease(self, sweep_name: str, owner: str) -> bool:
        """The heartbeat: False when another driver holds the lease now."""

        def work(session: Session) -> bool:
            result = session.execute(
                sa.update(SweepLease)
                .where(SweepLease.sweep_name == sweep_name, SweepLease.owner == owner)
                .values(heartbeat_at=utcnow())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

        return self._run(work, fenced=False)

    def release_lease(self, sweep_name: str, owner: str) -> None:
        """Give the lease up (a no-op when another driver holds it)."""
        self._run(
            lambda s: s.execute(
                sa.delete(SweepLease).where(
                    SweepLease.sweep_name == sweep_name, SweepLease.owner == owner
                )
            ),
            fenced=False,
        )

    def get_lease(self, sweep_name: str) -> LeaseRow | None:
        """The sweep's lease holder, or None when no driver holds it."""

        def work(session: Session) -> LeaseRow | None:
            held = session.get(SweepLease, sweep_name)
            return None if held is None else _lease_row(held)

        return self._run(work, readonly=True)

    def fence(self, sweep_name: str, owner: str | None) -> None:
        """From now on every write checks that `owner` holds the lease (None: stop checking)."""
        self._fence = None if owner is None else (sweep_name, owner)

    def _check_fence(self, session: Session, sweep_name: str, owner: str) -> None:
        stmt = sa.select(SweepLease.owner).where(SweepLease.sweep_name == sweep_name)
        if self.engine.dialect.name == "postgresql":
            stmt = stmt.with_for_update(read=True)  # a takeover waits until this write commits
        holder = session.scalar(stmt)
        if holder != owner:
            raise LeaseLost(
                f"another driver took over sweep {sweep_name!r} in {self.masked_url}; "
                "this one stopped without writing"
            )

    def upsert_stage(
        self,
        sweep_id: int,
        name: str,
        *,
        kind: StageKind | str | None = None,
        inputs: Mapping[str, Any] | None = None,
        optuna_study: str | None = None,
        objective_name: str | None = None,
        direction: str = "minimize",
    ) -> int:
        """The stage's id, creating it (PENDING) if new. `kind` is a StageKind (default: the
        name, for stages named after their kind) and `inputs` the stages it reads.
        `objective_name` and `direction` say what a trial's objective is and which way is
        better (for `sweep status`)."""
        kind = StageKind(kind if kind is not None else name)
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {_DIRECTIONS}, not {direction!r}")
        now = utcnow()
        values = {
            "sweep_id": sweep_id,
            "name": name,
            "kind": kind,
            "inputs": None if inputs is None else _jsonable(inputs),
            "status": StageStatus.PENDING,
            "optuna_study": optuna_study,
            "objective_name": objective_name,
            "direction": direction,
            "created_at": now,
            "updated_at": now,
        }
        update = ["kind", "direction", "updated_at"]
        update += [k for k in ("inputs", "optuna_study", "objective_name") if values[k] is not None]

        return self._upsert_returning_id(
            StageModel, values, keys=["sweep_id", "name"], update=update
        )

    def set_stage_status(self, stage_id: int, status: str) -> None:
        """PENDING / RUNNING / COMPLETE / FAILED."""
        self._update(
            StageModel,
            stage_id,
            {"status": StageStatus(status), "updated_at": utcnow()},
            what="stage",
        )

    def get_stage(self, sweep_id: int, name: str) -> StageRow | None:
        def work(session: Session) -> StageRow | None:
            stage = session.scalar(
                sa.select(StageModel).where(
                    StageModel.sweep_id == sweep_id, StageModel.name == name
                )
            )
            return None if stage is None else _stage_row(stage)

        return self._run(work, readonly=True)

    def stages(self, sweep_id: int) -> list[StageRow]:
        """The sweep's stages in the order they were created."""
        stmt = sa.select(StageModel).where(StageModel.sweep_id == sweep_id).order_by(StageModel.id)
        return self._run(lambda s: [_stage_row(x) for x in s.scalars(stmt)], readonly=True)

    def delete_stage(self, stage_id: int) -> None:
        """Remove a stage and, by cascade, its trials, curves, evaluations and artifacts."""
        self._run(lambda s: s.execute(sa.delete(StageModel).where(StageModel.id == stage_id)))

    def _update(self, model: type[Any], row_id: int, values: dict[str, Any], *, what: str) -> None:
        def work(session: Session) -> None:
            result = session.execute(sa.update(model).where(model.id == row_id).values(values))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise StoreError(f"there is no {what} with id {row_id} in {self.masked_url}")

        self._run(work)

    # -- trials ---------------------------------------------------------------------------

    def upsert_trial(
        self,
        stage_id: int,
        number: int,
        *,
        role: str,
        params: Mapping[str, Any],
        seed: int,
        status: TrialStatus = TrialStatus.RUNNING,
        tune_trial_id: str | None = None,
        optuna_trial_number: int | None = None,
        resources: Mapping[str, Any] | None = None,
        node: str | None = None,
        config: Mapping[str, Any] | None = None,
        source_trial_id: int | None = None,
        started_at: datetime | None = None,
        data_tokens: int | None = None,
        ensemble_stage: str | None = None,
    ) -> int:
        """Insert the trial (stage_id, number) or update it; returns its id.

        role, params, seed and status are always written; the optional fields only when
        given, so a replay with less information never erases what is known. The outcome
        (objective, error, end) belongs to finish_trial.
        """
        status = TrialStatus(status)
        optional = {
            "tune_trial_id": tune_trial_id,
            "optuna_trial_number": optuna_trial_number,
            "resources": None if resources is None else _jsonable(resources),
            "node": node,
            "config": None if config is None else _jsonable(config),
            "source_trial_id": source_trial_id,
            "started_at": started_at,
            "data_tokens": data_tokens,
            "ensemble_stage": ensemble_stage,
        }
        now = utcnow()
        values = {
            "stage_id": stage_id,
            "number": number,
            "role": role,
            "status": status,
            "params": _jsonable(params),
            "seed": seed,
            "updated_at": now,
            **optional,
        }
        if values["started_at"] is None:
            values["started_at"] = now
        update = ["role", "status", "params", "seed", "updated_at"]
        update += [column for column, value in optional.items() if value is not None]

        return self._upsert_returning_id(Trial, values, keys=["stage_id", "number"], update=update)

    def finish_trial(
        self,
        trial_id: int,
        status: TrialStatus,
        *,
        objective: float | None = None,
        error: str | None = None,
        checkpoint_uri: str | None = None,
        ended_at: datetime | None = None,
        cost: TrialCost | None = None,
    ) -> None:
        """Record the outcome (COMPLETE, PRUNED or FAILED). The error text is always replaced
        (None clears an old one); objective, checkpoint_uri and cost only when given."""
        if TrialStatus(status) == TrialStatus.RUNNING:
            raise ValueError("finish_trial needs an outcome: COMPLETE, PRUNED or FAILED")
        values: dict[str, Any] = {
            "status": TrialStatus(status),
            "error": error,
            "ended_at": ended_at or utcnow(),
            "updated_at": utcnow(),
        }
        if objective is not None:
            values["objective"] = _finite(objective, "objective")
        if checkpoint_uri is not None:
            values["checkpoint_uri"] = checkpoint_uri
        if cost is not None:
            values["device_seconds"] = cost.device_seconds
            values["tokens_trained"] = cost.tokens_trained
            values["train_flops"] = cost.train_flops
        self._update(Trial, trial_id, values, what="trial")

    def set_trial_teachers(self, student_trial_id: int, teacher_trial_ids: Sequence[int]) -> None:
        """The teacher trials a student distilled from, in ensemble order (replaces)."""
        teachers = list(dict.fromkeys(teacher_trial_ids))

        def work(session: Session) -> None:
            session.execute(
                sa.delete(TrialTeacher).where(TrialTeacher.student_trial_id == student_trial_id)
            )
            if teachers:
                session.execute(
                    sa.insert(TrialTeacher).values(
                        [
                            {
                                "student_trial_id": student_trial_id,
                                "teacher_trial_id": teacher,
                                "position": position,
                            }
                            for position, teacher in enumerate(teachers)
                        ]
                    )
                )

        self._run(work)

    def add_metrics(self, trial_id: int, iteration: int, metrics: Mapping[str, float]) -> None:
        """Upsert one iteration's metrics; a NaN or infinite value is stored as NULL."""
        rows = [
            {"trial_id": trial_id, "iteration": iteration, "name": name, "value": _finite(v, name)}
            for name, v in sorted(metrics.items())  # one lock order for every writer
        ]
        if rows:
            self._run(
                lambda s: self._upsert(
                    s, TrialMetric, rows, keys=["trial_id", "iteration", "name"], update=["value"]
                )
            )

    def add_step_metrics(
        self, trial_id: int, epoch: int, name: str, points: Iterable[tuple[int, float]]
    ) -> None:
        """Upsert a within-epoch curve: (optimizer step, value) points of one metric."""
        rows = [
            {
                "trial_id": trial_id,
                "step": int(step),
                "name": name,
                "epoch": epoch,
                "value": _finite(v, name),
            }
            for step, v in sorted(points)
        ]
        if rows:
            self._run(
                lambda s: self._upsert(
                    s,
                    TrialStepMetric,
                    rows,
                    keys=["trial_id", "step", "name"],
                    update=["epoch", "value"],
                )
            )

    def trial_step_metrics(self, trial_id: int, name: str) -> list[tuple[int, float]]:
        """[(step, value)] of one metric, by step; a value stored as NULL comes back as NaN."""

        def work(session: Session) -> list[tuple[int, float]]:
            rows = session.execute(
                sa.select(TrialStepMetric.step, TrialStepMetric.value)
                .where(TrialStepMetric.trial_id == trial_id, TrialStepMetric.name == name)
                .order_by(TrialStepMetric.step)
            )
            return [(step, math.nan if v is None else v) for step, v in rows]

        return self._run(work, readonly=True)

    def add_evaluations(self, trial_id: int, rows: Iterable[EvaluationRow]) -> None:
        """Upsert evaluation results on (trial, suite, task, metric); the last duplicate wins."""
        unique = {(r.suite, r.task, r.metric): r for r in rows}
        values = [
            {
                "trial_id": trial_id,
                "suite": r.suite,
                "task": r.task,
                "task_group": r.group,
                "metric": r.metric,
                "value": None if r.value is None else _finite(r.value, f"{r.suite}/{r.task}"),
                "n": r.n,
            }
            for _, r in sorted(unique.items())
        ]
        if values:
            self._run(
                lambda s: self._upsert(
                    s,
                    Evaluation,
                    values,
                    keys=["trial_id", "suite", "task", "metric"],
                    update=["task_group", "value", "n"],
                )
            )

    def add_artifact(
        self,
        trial_id: int,
        uri: str,
        *,
        kind: str = "checkpoint",
        iteration: int | None = None,
        size_bytes: int | None = None,
        sha256: str | None = None,
    ) -> None:
        """Upsert a file or directory the trial wrote, on (trial, uri)."""
        row = {
            "trial_id": trial_id,
            "uri": uri,
            "kind": kind,
            "iteration": iteration,
            "size_bytes": size_bytes,
            "sha256": sha256,
            "created_at": utcnow(),
        }
        self._run(
            lambda s: self._upsert(
                s,
                Artifact,
                [row],
                keys=["trial_id", "uri"],
                update=["kind", "iteration", "size_bytes", "sha256"],
            )
        )

    def set_ensemble(self, stage_id: int, members: Sequence[tuple[int, int, float]]) -> None:
        """The ensemble stage's picks as (teacher trial id, rank, metric value); replaces."""
        rows = [
            {
                "stage_id": stage_id,
                "trial_id": trial_id,
                "rank": rank,
                "value": None if value is None else _finite(value, "ensemble value"),
            }
            for trial_id, rank, value in members
        ]

        def work(session: Session) -> None:
            session.execute(
                sa.delete(EnsembleMemberModel).where(EnsembleMemberModel.stage_id == stage_id)
            )
            if rows:
                session.execute(sa.insert(EnsembleMemberModel).values(rows))

        self._run(work)

    # -- reads for the runner -------------------------------------------------------------

    def ensemble_members(self, stage_id: int) -> list[EnsembleMember]:
        stmt = (
            sa.select(
                EnsembleMemberModel.trial_id,
                EnsembleMemberModel.rank,
                EnsembleMemberModel.value,
                Trial.checkpoint_uri,
                Trial.params,
            )
            .join(Trial, Trial.id == EnsembleMemberModel.trial_id)
            .where(EnsembleMemberModel.stage_id == stage_id)
            .order_by(EnsembleMemberModel.rank)
        )
        return self._run(lambda s: [EnsembleMember(*row) for row in s.execute(stmt)], readonly=True)

    def trials(self, stage_id: int) -> list[TrialRow]:
        """The stage's trials by number, with the teacher trials each distilled from."""

        def work(session: Session) -> list[TrialRow]:
            trials = list(
                session.scalars(
                    sa.select(Trial).where(Trial.stage_id == stage_id).order_by(Trial.number)
                )
            )
            teachers: dict[int, list[int]] = {}
            links = session.execute(
                sa.select(TrialTeacher.student_trial_id, TrialTeacher.teacher_trial_id)
                .join(Trial, Trial.id == TrialTeacher.student_trial_id)
                .where(Trial.stage_id == stage_id)
                .order_by(TrialTeacher.student_trial_id, TrialTeacher.position)
            )
            for student, teacher in links:
                teachers.setdefault(student, []).append(teacher)
            return [_trial_row(t, teachers.get(t.id, [])) for t in trials]

        return self._run(work, readonly=True)

    def trial_metrics(self, trial_id: int) -> dict[int, dict[str, float]]:
        """{iteration: {name: value}}; a value stored as NULL comes back as NaN."""

        def work(session: Session) -> dict[int, dict[str, float]]:
            curves: dict[int, dict[str, float]] = {}
            rows = session.execute(
                sa.select(TrialMetric.iteration, TrialMetric.name, TrialMetric.value)
                .where(TrialMetric.trial_id == trial_id)
                .order_by(TrialMetric.iteration, TrialMetric.name)
            )
            for iteration, name, value in rows:
                curves.setdefault(iteration, {})[name] = math.nan if value is None else value
            return curves

        return self._run(work, readonly=True)

    def checkpoint_artifacts(self, trial_id: int) -> list[ArtifactRow]:
        """The trial's checkpoints, latest first."""
        stmt = (
            sa.select(Artifact)
            .where(Artifact.trial_id == trial_id, Artifact.kind == "checkpoint")
            .order_by(
                Artifact.iteration.desc().nulls_last(),
                Artifact.created_at.desc(),
                Artifact.id.desc(),
            )
        )
        return self._run(lambda s: [_artifact_row(a) for a in s.scalars(stmt)], readonly=True)


def _finite(value: Any, name: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name!r} must be a number, not {value!r}") from None
    return number if math.isfinite(number) else None


def _jsonable(value: Any) -> Any:
    """A JSON document both backends accept: NaN/inf -> null, paths and other objects -> str."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _row(cls: type[_R], model: Any, **extra: Any) -> _R:
    """The row dataclass `cls` with each field read from the ORM object of the same name."""
    values = {
        f.name: getattr(model, f.name) for f in dataclasses.fields(cls) if f.name not in extra
    }
    return cls(**values, **extra)


def _sweep_row(sweep: Sweep) -> SweepRow:
    return _row(SweepRow, sweep)


def _lease_row(lease: SweepLease) -> LeaseRow:
    return _row(LeaseRow, lease)


def _stage_row(stage: StageModel) -> StageRow:
    return _row(StageRow, stage)


def _trial_row(trial: Trial, teacher_ids: Sequence[int]) -> TrialRow:
    return _row(TrialRow, trial, teacher_ids=tuple(teacher_ids))


def _artifact_row(artifact: Artifact) -> ArtifactRow:
    return _row(ArtifactRow, artifact)
