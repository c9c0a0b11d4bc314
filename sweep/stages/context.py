"""What every stage planner reads: the config, the store, and the stages that ran before."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sweep.config import SeededStage, StudentsStage, SweepConfig, TeachersStage, TrialStage
from sweep.errors import SweepError
from sweep.runner import StageSpec
from sweep.search import PlannedTrial
from sweep.store import StageStatus, Store, TrialRole, TrialRow, TrialStatus
from sweep.trainable import TrialContext
from trainers.config import DataConfig, RecipeConfig

__all__ = ["REPEAT_SEED_OFFSET", "EnsembleSelection", "PlanContext"]

# Repeat (and reference) seeds start here so they never coincide with a sweep trial's
# seed + number; every stage that re-seeds uses the same ones, so comparisons pair by seed.
REPEAT_SEED_OFFSET = 10_000
Teachers = tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class EnsembleSelection:
    """An ensemble stage's outcome: (teacher trial id, rank, metric value), best first."""

    members: list[tuple[int, int, float]]


@dataclass
class PlanContext:
    """One study's state while planning: the validated config and its store."""

    config: SweepConfig
    store: Store
    sweep_id: int
    _data_tokens: dict[str, int] = field(default_factory=dict)
    round_seeds: dict[str, int] = field(default_factory=dict)
    """seeds: auto stages: the seed count of the round the driver runs now (sweep.stages.rounds)."""

    def seed(self, name: str) -> int:
        """A stage's base seed: sampled trial n gets seed + n."""
        return self.config.seed + 1000 * self.config.stage_index(name)

    def seed_count(self, name: str, stage: SeededStage) -> int:
        """Seeds a re-seeding stage runs now: its count, or (seeds: auto) the current round's."""
        if stage.seeds == "auto":
            return self.round_seeds.get(name, min(stage.first_look, stage.most_seeds))
        return stage.seeds

    def repeat_seeds(self, seeds: int) -> list[int]:
        """The seeds every re-seeding stage uses (repeats and reference pair by them)."""
        return [self.config.seed + REPEAT_SEED_OFFSET + i for i in range(seeds)]

    def best(self, stage: str) -> list[TrialRow]:
        """A finished stage's COMPLETE trials, best objective first."""
        row = self.store.get_stage(self.sweep_id, stage)
        if row is None or row.status != StageStatus.COMPLETE:
            raise SweepError(
                f"stage {stage!r} has not finished in the store; run `sweep run --stage {stage}` "
                "first"
            )
        trials = [
            t
            for t in self.store.trials(row.id)
            if t.status == TrialStatus.COMPLETE and t.objective is not None
        ]
        return sorted(trials, key=lambda t: (t.objective, t.number))

    def picks(self, stage: str, source: str, n: int) -> list[TrialRow]:
        """The `n` best trials of `source` that `stage` re-runs.

        Once `stage` has trials, the sources they re-ran stay first, so growing a finished
        study (more seeds, a larger top_n) adds trials and never changes the ones that ran.
        """
        ranked = self.best(source)
        by_id = {t.id: t for t in ranked}
        row = self.store.get_stage(self.sweep_id, stage)
        earlier = [] if row is None else self.store.trials(row.id)
        kept = list(dict.fromkeys(t.source_trial_id for t in earlier if t.source_trial_id in by_id))
        chosen = [by_id[i] for i in kept if i is not None]
        chosen += [t for t in ranked if t.id not in kept]
        return chosen[:n]

    def ensemble(self, name: str) -> Teachers:
        """(teacher trial id, checkpoint URI) of an ensemble stage's members, by rank."""
        row = self.store.get_stage(self.sweep_id, name)
        members = self.store.ensemble_members(row.id) if row is not None else []
        if not members:
            raise SweepError(
                f"stages.{name}: the teacher ensemble has not been selected; run "
                f"`sweep run --stage {name}` (after its teachers) first"
            )
        return tuple((m.trial_id, m.checkpoint_uri or "") for m in members)

    def data_tokens(self, data: DataConfig) -> int:
        """Training tokens per epoch under `data`'s cap (the token cache is ready by now)."""
        from trainers.data import split_tokens

        key = data.model_dump_json()
        if key not in self._data_tokens:
            self._data_tokens[key] = len(split_tokens(data, "train"))
        return self._data_tokens[key]

    def trial_context(
        self,
        name: str,
        epochs: int,
        *,
        alpha1: bool,
        teachers: Teachers = (),
        data: DataConfig | None = None,
    ) -> TrialContext:
        config = self.config
        training = config.training.model_copy(update={"alpha": 1.0}) if alpha1 else config.training
        recipe = RecipeConfig(data=data or config.data, model=config.model, training=training)
        glue = config.evaluation.glue
        return TrialContext(
            recipe=recipe,
            epochs=epochs,
            teacher_uris=tuple(uri for _, uri in teachers),
            glue=glue if name in glue.stages and glue.tasks else None,
            log_every=config.tracking.log_every,
            eval_every=config.tracking.eval_every,
        )

    def sampled_spec(
        self,
        name: str,
        stage: TeachersStage | StudentsStage,
        role: TrialRole,
        *,
        teachers: Teachers = (),
        ensemble_stage: str | None = None,
    ) -> StageSpec:
        """A stage whose trials Optuna samples from its space (teachers, students)."""
        context = self.trial_context(
            name, stage.epochs, alpha1=role == TrialRole.TEACHER, teachers=teachers
        )
        return StageSpec(
            sweep=self.config.name,
            name=name,
            seed=self.seed(name),
            total=stage.trials,
            role=role,
            context=context,
            resources=stage.resources,
            max_failures=stage.max_failures,
            scheduler=stage.scheduler,
            space=dict(stage.space),
            teacher_ids=tuple(i for i, _ in teachers),
            ensemble_stage=ensemble_stage,
            data_tokens=self.data_tokens(context.recipe.data),
        )

    def fixed_spec(
        self,
        name: str,
        stage: TrialStage,
        plans: list[PlannedTrial],
        *,
        data: DataConfig | None = None,
    ) -> StageSpec:
        """A stage of planned trials (baselines, repeats, reference); each names its teachers."""
        context = self.trial_context(name, stage.epochs, alpha1=False, data=data)
        return StageSpec(
            sweep=self.config.name,
            name=name,
            seed=self.seed(name),
            total=len(plans),
            role=plans[0].role if plans else "student",
            context=context,
            resources=stage.resources,
            max_failures=stage.max_failures,
            scheduler=None,
            plans=plans,
            data_tokens=self.data_tokens(context.recipe.data),
        )


def alpha1(params: dict[str, Any]) -> dict[str, Any]:
    """A config re-run without distillation (alpha = 1: cross-entropy only)."""
    return {**params, "alpha": 1.0}
