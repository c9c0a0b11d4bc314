"""A Ray Tune searcher on Optuna's ask/tell that tells the truth about every trial.

The stock `ray.tune.search.optuna.OptunaSearch` records an ASHA-stopped trial as COMPLETE
with a partial value, which misleads TPE and every later analysis; after a hard kill its
study keeps stale RUNNING trials. Here:

- `suggest` asks the stage's study (one per stage, `<sweep>/<stage>`, in the store's
  database) and hands out interrupted trials first, so a resumed stage re-runs them under
  their own Optuna number instead of asking new ones;
- `tell` is called by the store recorder *after* the store has the result, with the
  truthful state: COMPLETE with the objective, PRUNED (early-stopped, intermediate values
  kept) or FAIL;
- `reconcile` brings a study and the store into agreement before a (resumed) run.

Example::

    study = open_study(store.url, "demo/teachers", seed=0, trials=8)
    searcher = StageSearcher(study, space=config.stages["teachers"].space, total=8, seed=0)
"""

from __future__ import annotations

import math
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState
from ray.tune.search import Searcher

from sweep import optuna_compat
from sweep.config import (
    Categorical,
    IntRange,
    LogNormal,
    LogUniform,
    OneMinusLogUniform,
    Param,
    QLogNormal,
    Uniform,
)
from sweep.priors import QUANTILE, prior_value, quantile_range
from sweep.store import Store, TrialStatus, retry_while_disconnected

__all__ = [
    "Adopted",
    "PlannedTrial",
    "StageSearcher",
    "open_study",
    "reconcile",
    "to_distributions",
    "training_params",
]

OBJECTIVE = "dev_loss"
_ATTR_SLOT = "babysweep_slot"
_ATTR_META = "babysweep_meta"
_ATTR_TICKET = "babysweep_ticket"


@dataclass(frozen=True)
class PlannedTrial:
    """A fixed trial (baseline or repeat): its params and what it came from."""

    params: dict[str, Any]
    seed: int
    role: str
    source_trial_id: int | None = None
    teachers: tuple[tuple[int, str], ...] = ()
    """(teacher trial id, checkpoint URI) to distil from; () uses the stage's, if any."""
    ensemble_stage: str | None = None
    """The ensemble stage those teachers came from."""


@dataclass
class Suggestion:
    """What a Tune trial runs: an Optuna trial number, its params, seed and provenance."""

    number: int
    optuna_trial_id: int
    params: dict[str, Any]
    seed: int
    role: str
    source_trial_id: int | None = None
    resume_uri: str | None = None
    teachers: tuple[tuple[int, str], ...] = ()
    ensemble_stage: str | None = None

    def as_config(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": dict(self.params),
            "seed": self.seed,
            "role": self.role,
            "source_trial_id": self.source_trial_id,
            "resume_uri": self.resume_uri,
            "teacher_uris": [uri for _, uri in self.teachers],
        }


@dataclass(frozen=True)
class Adopted:
    """An interrupted trial to re-run under its own number, from its last checkpoint."""

    optuna_trial_id: int
    slot: int | None = None
    resume_uri: str | None = None


ONE_MINUS = "one_minus_"
"""Optuna's name for x in a `one_minus_loguniform` hyperparameter 1 - x."""


def to_distributions(space: Mapping[str, Param]) -> dict[str, BaseDistribution]:
    """sweep.yaml distributions as Optuna distributions; fixed values become 1-choice.

    A one_minus_loguniform `beta2` is Optuna's log-scale `one_minus_beta2`, so TPE models
    1 - beta2 on the scale it is sampled on; a (q_)lognormal `lr` is Optuna's uniform
    `quantile_lr`, the prior's quantile (sweep.priors); `training_params` maps both back.
    A continuous uniform's high is never drawn ([low, high), as W&B's `uniform`).
    """
    out: dict[str, BaseDistribution] = {}
    for name, param in space.items():
        if isinstance(param, OneMinusLogUniform):
            out[ONE_MINUS + name] = FloatDistribution(param.low, param.high, log=True)
        elif isinstance(param, LogNormal | QLogNormal):
            out[QUANTILE + name] = FloatDistribution(*quantile_range(param))
        elif isinstance(param, LogUniform):
            out[name] = FloatDistribution(param.low, param.high, log=True)
        elif isinstance(param, Uniform):
            high = param.high
            if param.step is None and high > param.low:
                high = math.nextafter(high, param.low)  # samplers may return their high end
            out[name] = FloatDistribution(param.low, high, step=param.step)
        elif isinstance(param, IntRange):
            out[name] = IntDistribution(param.low, param.high, step=param.step, log=param.log)
        elif isinstance(param, Categorical):
            out[name] = CategoricalDistribution(list(param.choices))
        else:
            out[name] = CategoricalDistribution([param])
    return out


def training_params(space: Mapping[str, Param], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """An Optuna trial's params as TrainingConfig values (one_minus_x -> x = 1 - value;
    quantile_x -> the prior's value at that quantile)."""
    out = dict(sampled)
    for name, param in space.items():
        if isinstance(param, OneMinusLogUniform) and ONE_MINUS + name in out:
            out[name] = 1.0 - float(out.pop(ONE_MINUS + name))
        elif isinstance(param, LogNormal | QLogNormal) and QUANTILE + name in out:
            out[name] = prior_value(param, float(out.pop(QUANTILE + name)))
    return out


def open_study(url: str, name: str, *, seed: int, trials: int) -> optuna.Study:
    """The stage's study in the store's database: TPE, seeded, constant liar for parallelism."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=seed, constant_liar=True, n_startup_trials=max(2, min(10, trials // 2))
    )
    # SQLite: wait for the store's writers rather than fail after sqlite3's default 5 s.
    engine_kwargs: dict[str, Any] = (
        {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )

    def create() -> optuna.Study:
        # RDBStorage creates Optuna's tables on first use: inside the retry too.
        study = optuna.create_study(
            study_name=name,
            storage=optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs),
            sampler=sampler,
            direction="minimize",
            load_if_exists=True,
        )
        # The objective's name, so optuna-dashboard and `study.metric_names` say what the
        # best value is (experimental since Optuna 3.2, stable in behaviour: one study attr).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE])
        return study

    return retry_while_disconnected(create)


def reconcile(study: optuna.Study, store: Store, stage_id: int) -> list[Adopted]:
    """Make the study agree with the store; return the interrupted trials to re-run.

    The recorder writes the store first and tells Optuna second, so after a hard kill:
    - store finished, study RUNNING: tell Optuna what the store knows;
    - both RUNNING (or the store never saw it): the trial was interrupted; re-run it under
      its own number, from its last checkpoint.
    """
    rows = {row.number: row for row in store.trials(stage_id)}
    adopted: list[Adopted] = []
    for trial in retry_while_disconnected(lambda: study.get_trials(deepcopy=False)):
        if trial.state.is_finished():
            continue
        row = rows.get(trial.number)
        if row is not None and row.status != TrialStatus.RUNNING:
            tell(study, trial.number, row.status, row.objective)
            continue
        resume = store.checkpoint_artifacts(row.id) if row is not None else []
        adopted.append(
            Adopted(
                optuna_trial_id=optuna_compat.trial_id(trial),
                slot=trial.system_attrs.get(_ATTR_SLOT),
                resume_uri=resume[0].uri if resume else None,
            )
        )
    return adopted


def tell(
    study: optuna.Study, number: int, status: TrialStatus | str, objective: float | None
) -> None:
    """Finish an Optuna trial with the state the store recorded."""
    status = TrialStatus(status)
    if status == TrialStatus.COMPLETE and objective is not None and math.isfinite(objective):
        retry_while_disconnected(lambda: study.tell(number, objective, skip_if_finished=True))
    else:
        state = TrialState.PRUNED if status == TrialStatus.PRUNED else TrialState.FAIL
        retry_while_disconnected(lambda: study.tell(number, state=state, skip_if_finished=True))


class StageSearcher(Searcher):
    """Ask-only Tune searcher: Optuna samples (or fixed plans fill) each trial's params.

    The recorder callback, not this class, finishes trials (`tell`), so the store always
    knows a result before Optuna does.
    """

    def __init__(
        self,
        study: optuna.Study,
        *,
        total: int,
        seed: int,
        role: str,
        space: Mapping[str, Param] | None = None,
        plans: Sequence[PlannedTrial] | None = None,
        adopted: Sequence[Adopted] = (),
    ) -> None:
        super().__init__(metric=OBJECTIVE, mode="min")
        self.study = study
        self.seed = seed
        self.role = role
        self.space = dict(space or {})
        self.distributions = to_distributions(self.space)
        self.plans = list(plans) if plans is not None else None
        self.pending_adopted = list(adopted)
        existing = retry_while_disconnected(lambda: study.get_trials(deepcopy=False))
        self.used_slots = {t.system_attrs.get(_ATTR_SLOT) for t in existing}
        self.remaining = total - sum(t.state.is_finished() for t in existing)
        self.by_tune_id: dict[str, Suggestion] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        finished: Any = Searcher.FINISHED  # Tune's sentinel string for "no more trials"
        if self.remaining <= 0:
            return finished
        if self.pending_adopted:
            adopted = self.pending_adopted.pop(0)
            suggestion: Suggestion | None = replace(
                retry_while_disconnected(lambda: self._fill(adopted.optuna_trial_id, adopted.slot)),
                resume_uri=adopted.resume_uri,
            )
        else:
            suggestion = self._ask()
        if suggestion is None:
            return finished
        self.remaining -= 1
        self.by_tune_id[trial_id] = suggestion
        return suggestion.as_config()

    def _ask(self) -> Suggestion | None:
        """A new trial, safe to retry after a lost connection.

        Optuna's `study.ask` takes several transactions; a connection lost between them
        leaves a RUNNING trial nobody runs, and a retry would ask another. Here the trial is
        created in one transaction that carries a ticket (and the plan slot), so a retry
        finds the trial its failed attempt created, and `_fill` keeps whatever params were
        already suggested.
        """
        slot = None
        if self.plans is not None:
            slot = next((i for i in range(len(self.plans)) if i not in self.used_slots), None)
            if slot is None:
                return None
        ticket = uuid.uuid4().hex
        attrs = {_ATTR_TICKET: ticket} | ({} if slot is None else {_ATTR_SLOT: slot})

        def attempt() -> Suggestion:
            running = self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            mine = [
                optuna_compat.trial_id(t)
                for t in running
                if t.system_attrs.get(_ATTR_TICKET) == ticket
            ]
            trial_id = mine[0] if mine else optuna_compat.create_running_trial(self.study, attrs)
            return self._fill(trial_id, slot)

        suggestion = retry_while_disconnected(attempt)
        if slot is not None:
            self.used_slots.add(slot)
        return suggestion

    def _fill(self, trial_id: int, slot: int | None) -> Suggestion:
        """Suggest the trial's missing params and record its seed and role (idempotent)."""
        trial = optuna_compat.trial_handle(self.study, trial_id)
        plan = None if slot is None else (self.plans or [])[slot]
        if plan is None:
            distributions = self.distributions
            meta: dict[str, Any] = {
                "seed": self.seed + trial.number,
                "role": self.role,
                "source_trial_id": None,
            }
        else:
            distributions = self._fixed_distributions(plan.params)
            meta = {"seed": plan.seed, "role": plan.role, "source_trial_id": plan.source_trial_id}
        for name, distribution in distributions.items():
            _suggest(trial, name, distribution)
        optuna_compat.set_system_attr(self.study, trial_id, _ATTR_META, meta)
        params = training_params(self.space, trial.params) if slot is None else trial.params
        for name in params.keys() - trial.params.keys():
            # a value Optuna sampled on another scale: the one the trial trains with, for
            # optuna-dashboard and anyone reading the study alone
            trial.set_user_attr(name, params[name])
        return Suggestion(
            number=trial.number,
            optuna_trial_id=trial_id,
            params=params,
            seed=int(meta["seed"]),
            role=str(meta["role"]),
            source_trial_id=meta["source_trial_id"],
            teachers=plan.teachers if plan is not None else (),
            ensemble_stage=plan.ensemble_stage if plan is not None else None,
        )

    def _fixed_distributions(self, params: Mapping[str, Any]) -> dict[str, BaseDistribution]:
        """A planned trial's values as one-point distributions of a stable kind per name.

        Optuna refuses a parameter whose categorical choices change between trials, so
        numbers become [v, v] ranges and other values one categorical over every plan.
        """
        plans = self.plans or []
        out: dict[str, BaseDistribution] = {}
        for name, value in params.items():
            values = [p.params[name] for p in plans if name in p.params]
            if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                out[name] = IntDistribution(value, value)
            elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                out[name] = FloatDistribution(float(value), float(value))
            else:
                out[name] = CategoricalDistribution(sorted(set(values), key=repr))
        return out

    # Tuner pickles its searcher for Tuner.restore, which babysweep never uses: the study
    # in the database is the state, so the live connection is left out.
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "study"}

    def save(self, checkpoint_path: str) -> None:
        return None

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        # The recorder tells Optuna after the store has the result; see the module doc.
        return None

    def report_intermediate(self, number: int, points: Sequence[tuple[int, float]]) -> None:
        """The objective on the training-tokens axis (every epoch's end, and within epochs
        where `tracking.eval_every` is set), so optuna-dashboard draws learning curves live.

        Tokens, not optimizer steps: a stage's trials see the same tokens per epoch whatever
        their batch size, so an epoch's end has one key for all of them, and TPE, which ranks
        pruned trials by their last key, compares them at equal training.
        """
        finite = [(int(step), float(value)) for step, value in points if math.isfinite(value)]
        if finite:
            retry_while_disconnected(
                lambda: optuna_compat.report_intermediate(self.study, number, finite)
            )


def _suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Optuna's public suggest call for a distribution; an already suggested param is kept."""
    if isinstance(distribution, FloatDistribution):
        d = distribution
        return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    assert isinstance(distribution, CategoricalDistribution)
    return trial.suggest_categorical(name, distribution.choices)
