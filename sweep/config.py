"""sweep.yaml, validated once at the edge into typed models.

`load_sweep_config(path)` is the only way in: it parses, checks structure with pydantic,
checks meaning (bounds, paths, K <= teacher trials) with field paths such as
`stages.students_k2.space.alpha.high`, resolves every path, and touches nothing on disk.
Downstream code never re-checks or reads raw dicts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    field_validator,
)

from sweep.errors import ConfigError
from sweep.locations import path_exists, path_is_dir
from sweep.store.models import StageKind
from trainers.config import (
    CACHE_DIR_ENV,
    DISTILLATION_FIELDS,
    HYPERPARAMETERS,
    MAX_SEED,
    DataConfig,
    ModelConfig,
    TrainingConfig,
    validate_yaml_file,
)
from trainers.errors import TrainerError

__all__ = [
    "BaselinesStage",
    "Categorical",
    "EnsembleStage",
    "IntRange",
    "LogNormal",
    "LogUniform",
    "OneMinusLogUniform",
    "QLogNormal",
    "ReferenceStage",
    "RepeatsStage",
    "Resources",
    "Scheduler",
    "SearchStage",
    "SeededStage",
    "Stage",
    "StageKind",
    "StudentsStage",
    "SweepConfig",
    "TeachersStage",
    "TrackingConfig",
    "TrialStage",
    "Uniform",
    "load_sweep_config",
    "max_trial_epochs",
]

_STAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_PATH_FIELDS = {"root", "corpus", "blimp", "glue", "cache_dir"}
STORAGE_ENV = "SWEEP_STORAGE_URL"
OUTPUT_DIR_ENV = "SWEEP_OUTPUT_DIR"
# Hyperparameters a search space may name: every TrainingConfig field that is not a runtime
# setting (trainers.config.HYPERPARAMETERS); teachers are not distilled.
STUDENT_PARAMS = HYPERPARAMETERS
TEACHER_PARAMS = tuple(n for n in HYPERPARAMETERS if n not in DISTILLATION_FIELDS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogUniform(_Strict):
    """Sampled log-uniformly in [low, high] (learning rates)."""

    dist: Literal["loguniform"]
    low: float
    high: float


class Uniform(_Strict):
    """Sampled uniformly in [low, high), as W&B's `uniform`; on a grid of `step` (high
    included) when given. high itself is never drawn, so `attention_dropout: {dist: uniform,
    low: 0, high: 1}` is the reference's prior on a parameter that must stay below 1."""

    dist: Literal["uniform"]
    low: float
    high: float
    step: float | None = None


class IntRange(_Strict):
    """An integer in [low, high] (inclusive), on a grid of `step`, optionally log-spaced."""

    dist: Literal["int"]
    low: int
    high: int
    step: int = 1
    log: bool = False


class OneMinusLogUniform(_Strict):
    """1 - x with x sampled log-uniformly in [low, high]: a beta near 1 (Adam's beta2).

    `beta2: {dist: one_minus_loguniform, low: 1.0e-4, high: 1.0e-2}` samples beta2 in
    [0.99, 0.9999], as evenly per decade of 1 - beta2 as the reference's W&B sweep does.
    Optuna records the sampled x as `one_minus_<name>`; the trial and the store get 1 - x.
    """

    dist: Literal["one_minus_loguniform"]
    low: float
    high: float


class LogNormal(_Strict):
    """log x ~ N(mu, sigma), W&B's `log_normal` (the reference sweep's lr, eps, weight decay).

    Optuna searches the prior's quantile `quantile_<name>` (start-up draws follow the prior
    exactly; TPE models it on the prior's probability scale); the trial, the store and the
    Optuna trial's user attribute `<name>` get the value. `low`/`high` truncate the prior
    (the draw is conditioned on low <= x <= high). See sweep.priors.
    """

    dist: Literal["lognormal"]
    mu: float
    sigma: float = Field(gt=0)
    low: float | None = Field(None, gt=0)
    high: float | None = Field(None, gt=0)


class QLogNormal(_Strict):
    """round(x / q) * q with log x ~ N(mu, sigma), W&B's `q_log_normal` (batch size, epochs,
    warmup steps in the reference sweep); an integer q gives integers.

    `low`/`high` bound the rounded value (the prior conditioned on low <= value <= high):
    `batch_size: {dist: q_lognormal, mu: 5, sigma: 1.5, low: 1}` keeps the prior's tiny mass
    that rounds to a batch of 0 out. Sampled through its quantile as `lognormal` is.
    """

    dist: Literal["q_lognormal"]
    mu: float
    sigma: float = Field(gt=0)
    q: StrictInt | StrictFloat = Field(1, gt=0)
    low: float | None = Field(None, ge=0)
    high: float | None = Field(None, gt=0)


class Categorical(_Strict):
    """One of `choices` (batch sizes, schedules)."""

    dist: Literal["categorical"]
    choices: list[StrictBool | StrictInt | StrictFloat | StrictStr] = Field(min_length=1)


Distribution = Annotated[
    LogUniform | Uniform | IntRange | Categorical | OneMinusLogUniform | LogNormal | QLogNormal,
    Field(discriminator="dist"),
]
# A parameter is a distribution or a fixed value.
Param = Distribution | StrictBool | StrictInt | StrictFloat | StrictStr


class Resources(_Strict):
    """Per-trial Ray resources; a GPU fraction lets several small trials share one GPU."""

    cpu: float = Field(1.0, gt=0, le=4096)
    """CPUs per trial (also torch's thread count)."""
    gpu: float = Field(0.0, ge=0, le=1024)
    """GPUs per trial; 0.25 packs four trials on a GPU."""


class Scheduler(_Strict):
    """Early stopping of poor trials. ASHA stops them at rungs grace_period * rf^k epochs."""

    type: Literal["asha", "none"] = "asha"
    """asha: asynchronous successive halving; none: every trial runs all its epochs."""
    grace_period: int = Field(1, ge=1)
    """Epochs every trial gets before it can be stopped."""
    reduction_factor: float = Field(2.0, gt=1)
    """Keep the best 1/reduction_factor of trials at each rung."""


class TrialStage(_Strict):
    """What every stage that runs trials shares."""

    epochs: int = Field(2, ge=1)
    """Training epochs per trial (a search space's `epochs` overrides it per trial)."""
    resources: Resources = Resources()
    """Ray resources per trial."""
    max_failures: int = Field(0, ge=0)
    """Retries of a failed trial before it counts as FAILED."""


class SearchStage(TrialStage):
    """An Optuna-sampled sweep (teachers or students)."""

    trials: int = Field(4, ge=1)
    """Trials to run (Optuna samples each); raising it on a finished study runs only the new ones."""
    scheduler: Scheduler = Scheduler()
    """Early stopping."""
    space: dict[str, Param] = Field(default_factory=dict)
    """Hyperparameter -> distribution or fixed value; unnamed ones come from `training`."""


class TeachersStage(SearchStage):
    """The no-distillation LM sweep."""

    kind: Literal[StageKind.TEACHERS] = StageKind.TEACHERS


class EnsembleStage(_Strict):
    """Pick the K best finished teacher trials of a teachers stage as a teacher ensemble."""

    kind: Literal[StageKind.ENSEMBLE] = StageKind.ENSEMBLE
    teachers: str | None = None
    """The teachers stage to pick from; None: the one declared before."""
    k: int = Field(2, ge=1)
    """Teachers in the ensemble (BabyLlama-2 uses 2; 1 is a single-teacher student)."""
    metric: Literal["dev_loss", "blimp_overall"] = "dev_loss"
    """Selection metric (dev_loss is minimised, blimp_overall maximised)."""


class StudentsStage(SearchStage):
    """The distillation sweep: every trial distils from one named ensemble."""

    kind: Literal[StageKind.STUDENTS] = StageKind.STUDENTS
    ensemble: str | None = None
    """The ensemble stage to distil from; None: the one declared before (if only one)."""


class BaselinesStage(TrialStage):
    """Matched no-distillation controls: each top student config re-run with alpha=1, no teachers."""

    kind: Literal[StageKind.BASELINES] = StageKind.BASELINES
    students: list[str] | None = None
    """The students stages to control for; None: every students stage declared before."""
    top_n: int = Field(2, ge=0)
    """How many of each students stage's best configs get a control (0 skips the stage)."""


class SeededStage(TrialStage):
    """A stage that re-runs chosen configs on the shared seeds (repeats, reference).

    `seeds: auto` runs them in rounds (first_look seeds, then round_seeds more per round) and
    stops once every comparison those seeds feed is decided by the anytime-valid sequential
    test (analysis.sequential), or at max_seeds.
    """

    seeds: Annotated[int, Field(ge=0)] | Literal["auto"] = 2
    """Seeds per config (0 skips the stage), or auto: grow in rounds until decided."""
    max_seeds: int | None = Field(None, ge=1)
    """With seeds: auto, the most seeds to run; raising it on a finished study continues it."""
    first_look: int = Field(4, ge=3)
    """With seeds: auto, seeds in the first round (a verdict needs 3 pairs; the sequential test
    can first decide at 4 or 5)."""
    round_seeds: int = Field(1, ge=1)
    """With seeds: auto, seeds added per later round (more keeps a cluster busy per round)."""

    @property
    def sequential(self) -> bool:
        return self.seeds == "auto"

    @property
    def most_seeds(self) -> int:
        """The most seeds the stage can run (max_seeds for auto)."""
        return int(self.max_seeds or 0) if self.seeds == "auto" else int(self.seeds)


class RepeatsStage(SeededStage):
    """Seed repeats of each source stage's best config, paired by seed across sources.

    A students source also repeats its alpha=1 control (role baseline) with the same seeds.
    """

    kind: Literal[StageKind.REPEATS] = StageKind.REPEATS
    sources: list[str] | None = None
    """Teachers and students stages whose best config is re-seeded; None: every one before."""


class ReferenceStage(SeededStage):
    """The best teacher config trained on more data (the paper's 10x-data model), re-seeded.

    Its seeds are the repeats' seeds, so the two pair by seed: with seeds: auto its rounds pair
    only with seeds the repeats ran (give the repeats a max_seeds at least as large).
    """

    kind: Literal[StageKind.REFERENCE] = StageKind.REFERENCE
    teachers: str | None = None
    """The teachers stage whose best config is retrained; None: the one declared before."""
    data_scale: int = Field(10, ge=1)
    """Training tokens per epoch as a multiple of data.max_train_tokens."""


def _stage_tag(value: Any) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    # a tag ending in "]" is left out of field paths in error messages
    return f"kind[{kind}]" if isinstance(kind, str) and kind in set(StageKind) else None


Stage = Annotated[
    Annotated[TeachersStage, Tag("kind[teachers]")]
    | Annotated[EnsembleStage, Tag("kind[ensemble]")]
    | Annotated[StudentsStage, Tag("kind[students]")]
    | Annotated[BaselinesStage, Tag("kind[baselines]")]
    | Annotated[RepeatsStage, Tag("kind[repeats]")]
    | Annotated[ReferenceStage, Tag("kind[reference]")],
    Discriminator(
        _stage_tag,
        custom_error_type="stage_kind",
        custom_error_message=f"kind: required; one of {', '.join(StageKind)}",
    ),
]
TrialStages = TeachersStage | StudentsStage | BaselinesStage | RepeatsStage | ReferenceStage
# What a trial-running stage's size is: extending it on a finished study adds trials and
# keeps the study (so the config hash leaves these out; `seeds: auto` itself stays in it).
_COUNT_FIELDS = ("trials", "seeds", "top_n", "max_seeds", "first_look", "round_seeds")

DEFAULT_STAGES: dict[str, Any] = {
    "teachers": TeachersStage(),
    "ensemble": EnsembleStage(),
    "students": StudentsStage(),
    "baselines": BaselinesStage(),
    "repeats": RepeatsStage(),
}


GlueTask = Literal[
    "cola", "sst2", "mrpc", "qqp", "mnli", "mnli-mm", "qnli", "rte", "boolq", "multirc", "wsc"
]  # fmt: skip
"""BabyLM's fine-tuning tasks (trainers.evaluate.tasks.FINETUNE_TASKS; a test keeps them equal)."""

ZeroShotSuite = Literal["blimp_filtered", "blimp_supplement", "ewok"]
"""BabyLM's zero-shot suites (trainers.evaluate.zeroshot.ZERO_SHOT_SUITES)."""


class FinetuneRecipeOverride(_Strict):
    """A task's fine-tuning recipe where it differs from the preset (None: the preset's)."""

    epochs: int | None = Field(None, ge=1)
    """Most epochs (early stopping may end sooner)."""
    lr: float | None = Field(None, gt=0)
    """AdamW learning rate."""
    batch_size: int | None = Field(None, ge=1)
    """Training batch size."""
    max_seq_length: int | None = Field(None, ge=4)
    """Longest input in tokens (also capped by the model's positions)."""
    patience: int | None = Field(None, ge=1)
    """Epochs without a dev gain before stopping."""


class GlueEvaluation(FinetuneRecipeOverride):
    """(Super)GLUE fine-tuning of finished trials' checkpoints (one fine-tune per task per trial).

    A task's recipe: the preset's, then the fields set here (for every task), then
    per_task[task]. Dev is scored after every epoch and the best epoch kept, as BabyLM does.
    """

    stages: list[str] = ["repeats"]
    """Declared stages whose trials are fine-tuned; [] disables GLUE."""
    tasks: list[GlueTask] = ["mrpc", "rte"]
    """Tasks to fine-tune on, by BabyLM's names (mnli-mm is scored by the mnli fine-tune)."""
    recipe: Literal["babylm2024", "babylm2023"] = "babylm2024"
    """Preset recipe. babylm2024: BabyLM 2024's finetune_model.sh for every task (lr 5e-5,
    batch 64, at most 10 epochs, patience 3, 128 tokens); babylm2023: the per-task table
    BabyLlama-2's author ran (JLTastet/evaluation-pipeline-2024 finetune_model-2023_pars.py)."""
    early_stopping: bool = True
    """Stop a task after `patience` epochs without a dev gain; False runs every epoch."""
    per_task: dict[GlueTask, FinetuneRecipeOverride] = {}
    """Recipe fields for one task (by its training task: mnli covers mnli-mm)."""
    max_train_examples: int | None = Field(None, ge=1)
    """Cap on training examples per task for quick runs."""
    max_eval_examples: int | None = Field(None, ge=1)
    """Cap on dev examples per task."""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """Fine-tuning seed."""

    @field_validator("per_task")
    @classmethod
    def _per_task_names_a_training_task(cls, value: dict) -> dict:
        if "mnli-mm" in value:
            raise ValueError("mnli-mm is scored by the mnli fine-tune; set per_task.mnli")
        return value

    def recipes(self) -> dict[str, dict[str, Any]]:
        """Training task -> its resolved recipe fields (trainers.evaluate.FinetuneRecipe's)."""
        from trainers.evaluate.tasks import BABYLM_2023_RECIPES, BABYLM_2024_RECIPE

        fields = ("epochs", "lr", "batch_size", "max_seq_length", "patience")
        resolved: dict[str, dict[str, Any]] = {}
        for task in dict.fromkeys("mnli" if t == "mnli-mm" else t for t in self.tasks):
            base = BABYLM_2023_RECIPES[task] if self.recipe == "babylm2023" else BABYLM_2024_RECIPE
            recipe = {f: getattr(base, f) for f in fields}
            for layer in (self, self.per_task.get(task)):
                if layer is not None:
                    recipe.update({f: getattr(layer, f) for f in fields if getattr(layer, f)})
            if not self.early_stopping:
                recipe["patience"] = None
            resolved[task] = recipe
        return resolved


class ZeroShotEvaluation(_Strict):
    """BabyLM's zero-shot suites, scored as lm-eval does (BLiMP itself ends every trial)."""

    stages: list[str] = ["repeats"]
    """Declared stages whose trials are scored; [] disables the suites."""
    suites: list[ZeroShotSuite] = []
    """Suites to score, each a folder under data.root: blimp_filtered/,
    supplement_filtered/ (blimp_supplement), ewok_filtered/ (docs/DATA.md)."""
    max_items_per_subtask: int | None = Field(None, ge=1)
    """Cap on items per subtask file for quick runs."""


class EvaluationConfig(_Strict):
    """Downstream evaluations beyond BLiMP (BLiMP runs at the end of every trial)."""

    glue: GlueEvaluation = GlueEvaluation()
    """BabyLM's (Super)GLUE fine-tuning tasks."""
    zero_shot: ZeroShotEvaluation = ZeroShotEvaluation()
    """BabyLM's zero-shot suites beside BLiMP."""


class WandbTracking(_Strict):
    """Weights & Biases: one run per trial (Ray Tune's WandbLoggerCallback)."""

    project: str = "babysweep"
    """W&B project."""
    entity: str | None = None
    """W&B team or user; None: your default entity."""
    mode: Literal["online", "offline"] = "online"
    """offline writes run files only (sync later with `wandb sync DIR`)."""
    dir: str | None = None
    """Where W&B writes its files; None: <output_dir>/<sweep name>/wandb."""


class MlflowTracking(_Strict):
    """MLflow: one run per trial in the experiment named after the sweep (MLflowLoggerCallback)."""

    tracking_uri: str | None = None
    """MLflow tracking URI (http://host:5000, sqlite:///mlflow.db); None: sqlite file
    <output_dir>/<sweep name>/mlflow.db."""
    experiment: str | None = None
    """Experiment name; None: the sweep name."""


class TensorBoardTracking(_Strict):
    """TensorBoard event files, one folder per trial (TBXLoggerCallback)."""

    dir: str | None = None
    """Event file root; None: <output_dir>/<sweep name>/tensorboard."""


class TrackingConfig(_Strict):
    """Experiment trackers every trial logs to, besides the store (each off unless set)."""

    log_every: int = Field(10, ge=1)
    """Train loss is recorded every this many optimizer steps (store and trackers)."""
    eval_every: int | None = Field(None, ge=1)
    """Dev loss is also evaluated every this many optimizer steps within an epoch (store,
    trackers and Optuna's intermediate values); None: at epoch ends only. Each evaluation
    costs one pass over the dev windows and changes nothing the trial trains."""
    wandb: WandbTracking | None = None
    """Weights & Biases; e.g. {mode: offline}."""
    mlflow: MlflowTracking | None = None
    """MLflow; e.g. {tracking_uri: http://localhost:5000}."""
    tensorboard: TensorBoardTracking | None = None
    """TensorBoard event files; e.g. {} for the default folder."""


class TargetEffect(_Strict):
    """The smallest effect worth finding: the report says how many seed pairs would find it."""

    blimp_pp: float = Field(1.0, gt=0, le=50)
    """BLiMP, in percentage points."""
    loss: float = Field(0.02, gt=0, le=10)
    """Test (or dev) loss, in nats per token."""


class ReportConfig(_Strict):
    """How `sweep report` and `sweep status` read the study (not part of what it trains)."""

    target_effect: TargetEffect = TargetEffect()
    """E.g. {blimp_pp: 1.0, loss: 0.02}: each verdict says the seed pairs that find it (80% power)."""


class SweepConfig(_Strict):
    """A whole study: `sweep run sweep.yaml`."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    """Sweep name: the key in the store and the prefix of the Optuna study names."""
    storage: str | None = None
    """SQLAlchemy URL of the store; None: $SWEEP_STORAGE_URL, else sqlite file <name>.db beside the yaml."""
    ray_address: str | None = None
    """Ray cluster to join (host:port or auto); None: $RAY_ADDRESS, else start a local Ray."""
    output_dir: str | None = None
    """Checkpoints (a shared path or object-store URI on a cluster); --output-dir and
    $SWEEP_OUTPUT_DIR override it; None: runs/ beside the yaml."""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """Base seed: Optuna samplers and trials (seed + 1000 * stage index + trial number; repeats use seed + 10000 + i)."""
    data: DataConfig = DataConfig()
    """Corpus, BLiMP and caps."""
    model: ModelConfig = ModelConfig()
    """Architecture of teachers and students (same size, as in BabyLlama-2)."""
    training: TrainingConfig = TrainingConfig()
    """Defaults for every trial; a stage's space overrides them."""
    stages: dict[str, Stage] = Field(default_factory=lambda: dict(DEFAULT_STAGES), min_length=1)
    """The declared stages, run in this order: name -> a stage of some `kind` and its inputs.

    `kind` may be left out where the name is a kind (`teachers:`, `students:`, ...)."""
    evaluation: EvaluationConfig = EvaluationConfig()
    """Downstream evaluation."""
    tracking: TrackingConfig = TrackingConfig()
    """Experiment trackers (W&B, MLflow, TensorBoard) and the train-loss logging interval."""
    report: ReportConfig = ReportConfig()
    """What the report asks of the verdicts (report.target_effect)."""
    source: Path | None = Field(None, exclude=True)
    """The yaml this came from (set by the loader)."""

    @field_validator("stages", mode="before")
    @classmethod
    def _kind_from_name(cls, value: Any) -> Any:
        """A list of named stages becomes the mapping; a stage named after a kind is of it."""
        if isinstance(value, list):
            if not all(isinstance(v, dict) and "name" in v for v in value):
                raise ValueError("a list of stages needs a `name:` in every entry")
            names = [v["name"] for v in value]
            twice = sorted({str(n) for n in names if names.count(n) > 1})
            if twice:  # the mapping form refuses it as a duplicate key
                from pydantic_core import PydanticCustomError

                raise PydanticCustomError(
                    "duplicate_stage",
                    "stage name '{name}' is declared more than once; give each stage its own "
                    "name (the mapping form refuses it as a duplicate key)",
                    {"name": twice[0]},
                )
            value = {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in value}
        if not isinstance(value, dict):
            return value
        out = {}
        for name, stage in value.items():
            if not isinstance(name, str) or not _STAGE_NAME.fullmatch(name):
                raise ValueError(
                    f"stage name {name!r}: use letters, digits, _ and - (starting with a letter)"
                )
            if isinstance(stage, dict) and "kind" not in stage and name in set(StageKind):
                stage = {"kind": name, **stage}
            out[name] = stage
        return out

    def stage_index(self, name: str) -> int:
        """Position of a declared stage (its seeds are seed + 1000 * index)."""
        return list(self.stages).index(name)

    def stages_of(self, kind: StageKind) -> list[str]:
        """Names of the declared stages of one kind, in order."""
        return [n for n, s in self.stages.items() if s.kind == kind]

    def resolved_json(self) -> dict[str, Any]:
        """The resolved config as JSON-able data, as stored with the sweep (password masked)."""
        from sweep.store.connection import mask_url

        data = self.model_dump(mode="json")
        if data.get("storage"):
            data["storage"] = mask_url(data["storage"])
        return data

    def config_hash(self) -> str:
        """sha256 of what defines the study; a sweep name is bound to one hash in the store.

        Stage sizes (trials, seeds, top_n) are left out: raising one on a finished study runs
        only the new trials.

        Where it runs is left out (storage, Ray address, checkpoint and cache paths, the data
        root, the trackers it logs to), so the same sweep resumes on a laptop or a cluster
        with other paths; so is how it is reported (`report`).
        """
        data = self.model_dump(
            mode="json", exclude={"storage", "ray_address", "output_dir", "tracking", "report"}
        )
        # a stage's size is not its meaning: raising trials or seeds extends the same study
        data["stages"] = {
            name: {
                k: v
                for k, v in stage.items()
                # a sequential study stays sequential: its verdict is read by another test
                if k not in _COUNT_FIELDS or (k == "seeds" and v == "auto")
            }
            for name, stage in data["stages"].items()
        }
        data["data"] = {
            **{k: v for k, v in data["data"].items() if k not in _PATH_FIELDS},
            **{k: Path(data["data"][k]).name for k in ("corpus", "blimp", "glue")},
        }
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def load_sweep_config(
    path: Path,
    *,
    storage: str | None = None,
    ray_address: str | None = None,
    output_dir: str | None = None,
) -> SweepConfig:
    """Read, validate and resolve sweep.yaml; CLI overrides win over the file.

    This is the one validation pass `sweep validate` and `sweep run` share: everything a
    run would refuse before its first trial (the data splits and evaluation data the
    stages read, the storage URL, the Ray address, the output dir) is refused here, every
    independent problem on its own line. Raises ConfigError; writes nothing.
    """
    path = Path(path)
    try:
        config = validate_yaml_file(path, SweepConfig)
    except TrainerError as exc:
        raise ConfigError(str(exc)) from None
    base = path.resolve().parent
    config, problems = _resolve(
        config, base, storage=storage, ray_address=ray_address, output_dir=output_dir
    )
    config, link_problems = _link_inputs(config)
    given_url = storage or config.storage or os.environ.get(STORAGE_ENV) or ""
    problems += link_problems
    problems += [
        _with_sqlite_hint(p, given_url)
        for p in _semantic_problems(config, data_found=not problems, linked=not link_problems)
    ]
    if problems:
        raise ConfigError(f"{path} is invalid:\n" + "\n".join(problems))
    return config.model_copy(update={"source": path.resolve()})


def _resolve(
    config: SweepConfig,
    base: Path,
    *,
    storage: str | None,
    ray_address: str | None,
    output_dir: str | None,
) -> tuple[SweepConfig, list[str]]:
    """The config with every path and address resolved, and the data-root problem if any
    (reported with the others, not instead of them)."""
    problems = []
    data = config.data
    if os.environ.get(CACHE_DIR_ENV):
        # Where this machine keeps caches wins over the file's (a cluster file names
        # /shared/cache); the resolved path then travels to every trial.
        data = data.model_copy(update={"cache_dir": Path(os.environ[CACHE_DIR_ENV])})
    try:
        data = data.resolved(base)
    except (TrainerError, OSError, ValueError) as exc:
        problems.append(str(exc) if isinstance(exc, TrainerError) else f"data.root: {exc}")
    url = (
        storage
        or config.storage
        or os.environ.get(STORAGE_ENV)
        or f"sqlite:///{base / config.name}.db"
    )
    url = _absolute_sqlite(url, base)
    out = output_dir or os.environ.get(OUTPUT_DIR_ENV) or config.output_dir or str(base / "runs")
    if "://" not in out and not Path(out).is_absolute():
        out = str((base / out).resolve())
    address = ray_address or config.ray_address or os.environ.get("RAY_ADDRESS") or None
    tracking = _resolve_tracking(config.tracking, base, out, config.name)
    updated = config.model_copy(
        update={
            "data": data,
            "storage": url,
            "output_dir": out,
            "ray_address": address,
            "tracking": tracking,
        }
    )
    return updated, problems


def _with_sqlite_hint(problem: str, given_url: str) -> str:
    """A storage problem from `sqlite:///tmp/x.db` (relative) meant as /tmp/x.db says so."""
    if not problem.startswith("storage:") or not given_url.startswith("sqlite:///"):
        return problem
    from sqlalchemy.exc import ArgumentError

    from sweep.store.connection import sqlite_slashes_hint

    try:
        return problem + sqlite_slashes_hint(given_url)
    except ArgumentError:
        return problem


def _resolve_tracking(tracking: TrackingConfig, base: Path, out: str, name: str) -> TrackingConfig:
    """Tracker folders absolute; unset ones under the sweep's local output folder."""
    # Trackers write on the driver: an object-store output_dir leaves them in runs/ here.
    root = Path(out) if "://" not in out else base / "runs"
    local = root / name

    def folder(given: str | None, default: str) -> str:
        return str((base / given).resolve()) if given else str(local / default)

    update: dict[str, Any] = {}
    if tracking.wandb is not None:
        update["wandb"] = tracking.wandb.model_copy(
            update={"dir": folder(tracking.wandb.dir, "wandb")}
        )
    if tracking.tensorboard is not None:
        update["tensorboard"] = tracking.tensorboard.model_copy(
            update={"dir": folder(tracking.tensorboard.dir, "tensorboard")}
        )
    if tracking.mlflow is not None:
        uri = tracking.mlflow.tracking_uri or f"sqlite:///{local / 'mlflow.db'}"
        update["mlflow"] = tracking.mlflow.model_copy(
            update={
                "tracking_uri": _absolute_sqlite(uri, base),
                "experiment": tracking.mlflow.experiment or name,
            }
        )
    return tracking.model_copy(update=update)


def _absolute_sqlite(url: str, base: Path) -> str:
    # A relative sqlite path means "beside the yaml", not "wherever the shell happens to be".
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        rest = url[len(prefix) :]
        if rest and rest != ":memory:":
            return f"{prefix}{(base / rest).resolve()}"
    return url


def _semantic_problems(
    config: SweepConfig, *, data_found: bool = True, linked: bool = True
) -> Iterator[str]:
    """Every meaning check, each as `field.path: what is wrong; what to do`."""
    yield from _storage_problems(config.storage or "")
    yield from _ray_address_problems(config.ray_address)
    yield from _output_dir_problems(config.output_dir or "")
    if data_found:
        yield from _data_problems(config.data)
        yield from _glue_problems(config)
    yield from _seed_problems(config)
    yield from _tracking_problems(config)
    try:
        config.model.check_seq_length(config.data.seq_length)  # the trainers' own rule
    except TrainerError as exc:
        yield str(exc)
    if linked:
        yield from _stage_problems(config)


def _stage_problems(config: SweepConfig) -> Iterator[str]:
    """Each stage's inputs name an earlier stage of the right kind; sizes fit their inputs."""
    stages = config.stages
    for name, stage in stages.items():
        field = f"stages.{name}"
        before = list(stages)[: config.stage_index(name)]
        if isinstance(stage, SearchStage):
            allowed = STUDENT_PARAMS if isinstance(stage, StudentsStage) else TEACHER_PARAMS
            for param_name, param in stage.space.items():
                where = f"{field}.space.{param_name}"
                if param_name not in allowed:
                    hint = " (teachers are not distilled)" if param_name in STUDENT_PARAMS else ""
                    yield f"{where}: unknown hyperparameter{hint}; use one of {', '.join(allowed)}"
                    continue
                yield from _param_problems(where, param_name, param, config.training)
            longest = max_trial_epochs(stage.space, stage.epochs)
            if stage.scheduler.type == "asha" and stage.scheduler.grace_period > longest:
                yield (
                    f"{field}.scheduler.grace_period: {stage.scheduler.grace_period} exceeds "
                    f"the stage's longest trial ({longest} epochs); lower it or use type: none"
                )
        for key, kinds in _INPUTS.get(stage.kind, {}).items():
            value = getattr(stage, key)
            names = value if isinstance(value, list) else [value]
            for ref in names:
                if ref not in stages:
                    yield (
                        f"{field}.{key}: no stage named {ref!r}; declared stages are "
                        f"{', '.join(stages)}"
                    )
                elif ref not in before:
                    yield f"{field}.{key}: {ref!r} runs after {name!r}; declare it before"
                elif stages[ref].kind not in kinds:
                    yield (
                        f"{field}.{key}: {ref!r} is a {stages[ref].kind} stage; name "
                        f"{_a(kinds[0])} {' or '.join(kinds)} stage"
                    )
        if isinstance(stage, EnsembleStage) and stage.teachers in stages:
            teachers = stages[stage.teachers]
            if isinstance(teachers, TeachersStage) and stage.k > teachers.trials:
                yield (
                    f"{field}.k: {stage.k} teachers wanted but stages.{stage.teachers}.trials "
                    f"is {teachers.trials}; lower k or run more teacher trials"
                )
        if isinstance(stage, BaselinesStage):
            for ref in stage.students or []:
                students = stages.get(ref)
                if isinstance(students, StudentsStage) and stage.top_n > students.trials:
                    yield (
                        f"{field}.top_n: {stage.top_n} exceeds stages.{ref}.trials "
                        f"({students.trials}); lower it"
                    )
        if isinstance(stage, SeededStage):
            yield from _sequential_problems(field, stage)
        if isinstance(stage, ReferenceStage) and config.data.max_train_tokens is None:
            yield (
                f"{field}.data_scale: a multiple of data.max_train_tokens, which is not set; "
                "set data.max_train_tokens (the other stages' slice)"
            )
    trial_stages = [n for n, s in stages.items() if s.kind != StageKind.ENSEMBLE]
    for section in ("glue", "zero_shot"):
        for i, ref in enumerate(getattr(config.evaluation, section).stages):
            if ref not in trial_stages:
                yield (
                    f"evaluation.{section}.stages[{i}]: no trial stage named {ref!r}; use one "
                    f"of {', '.join(trial_stages)}"
                )


def _sequential_problems(field: str, stage: SeededStage) -> Iterator[str]:
    """seeds: auto needs max_seeds, and the round keys mean nothing without it."""
    if stage.seeds != "auto":
        for key in ("max_seeds", "first_look", "round_seeds"):
            if key in stage.model_fields_set:
                yield (
                    f"{field}.{key}: read only with seeds: auto; set seeds: auto to grow the "
                    f"seeds in rounds, or remove {key} ({stage.seeds} seeds run)"
                )
        return
    if stage.max_seeds is None:
        yield (
            f"{field}.max_seeds: required with seeds: auto (the most seeds to run before the "
            "study stops inconclusive); e.g. max_seeds: 10"
        )
    elif stage.max_seeds < stage.first_look:
        yield (
            f"{field}.max_seeds: {stage.max_seeds} is below first_look ({stage.first_look}, "
            "the seeds of the first round); raise max_seeds or lower first_look"
        )


# kind -> {input field: the kinds it may name}
_INPUTS: dict[StageKind, dict[str, tuple[StageKind, ...]]] = {
    StageKind.ENSEMBLE: {"teachers": (StageKind.TEACHERS,)},
    StageKind.STUDENTS: {"ensemble": (StageKind.ENSEMBLE,)},
    StageKind.BASELINES: {"students": (StageKind.STUDENTS,)},
    StageKind.REPEATS: {"sources": (StageKind.TEACHERS, StageKind.STUDENTS)},
    StageKind.REFERENCE: {"teachers": (StageKind.TEACHERS,)},
}


def _link_inputs(config: SweepConfig) -> tuple[SweepConfig, list[str]]:
    """Fill each stage's unnamed inputs with the stages declared before it; problems if ambiguous."""
    problems: list[str] = []
    linked: dict[str, Any] = {}
    seen: list[tuple[str, StageKind]] = []
    for name, stage in config.stages.items():
        update: dict[str, Any] = {}
        for key, kinds in _INPUTS.get(stage.kind, {}).items():
            if getattr(stage, key) is not None:
                continue
            earlier = [n for n, k in seen if k in kinds]
            if key in {"students", "sources"}:  # lists: every earlier stage of those kinds
                update[key] = earlier
            elif len(earlier) == 1:
                update[key] = earlier[0]
            else:
                what = " or ".join(kinds)
                found = f"several ({', '.join(earlier)})" if earlier else "none"
                problems.append(
                    f"stages.{name}.{key}: name the {what} stage it uses; {found} declared before it"
                )
        linked[name] = stage.model_copy(update=update) if update else stage
        seen.append((name, stage.kind))
    return config.model_copy(update={"stages": linked}), problems


def max_trial_epochs(space: dict[str, Param], default: int) -> int:
    """The most epochs a trial of the space can train (ASHA's max_t): `epochs` in the
    space, else the stage's `default`."""
    param = space.get("epochs", default)
    if isinstance(param, IntRange):
        return param.high
    if isinstance(param, LogNormal | QLogNormal):
        from sweep.priors import prior_support

        return math.ceil(prior_support(param)[1])
    if isinstance(param, Categorical):
        return max(int(c) for c in param.choices if isinstance(c, int | float))
    return int(param) if isinstance(param, int | float) else default


def _storage_problems(url: str) -> Iterator[str]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except (ArgumentError, ValueError):
        yield "storage: not a database URL; use sqlite:///path/to/sweep.db or postgresql+psycopg://user@host/db"
        return
    if backend not in {"sqlite", "postgresql"}:
        yield (
            f"storage: unknown database dialect {backend!r}; babysweep supports sqlite "
            "(sqlite:///sweep.db) and postgresql (postgresql+psycopg://user@host/db)"
        )
    elif backend == "sqlite" and (
        not parsed.database or ":memory:" in parsed.database or parsed.query.get("mode") == "memory"
    ):
        # an in-memory database vanishes with the driver: every result would be lost
        yield (
            "storage: an in-memory SQLite database keeps nothing after the run; name a file "
            "(sqlite:///sweep.db) or a PostgreSQL database"
        )
    elif backend == "sqlite" and parsed.database:
        database = Path(parsed.database)
        parent = database.parent
        if not path_is_dir(parent):
            yield f"storage: directory {parent} does not exist; create it or change storage"
        elif path_is_dir(database):
            yield f"storage: {database} is a directory; name a database file inside it"
        elif not path_exists(database) and not os.access(parent, os.W_OK | os.X_OK):
            yield f"storage: cannot create {database} ({parent} is not writable); change storage"
    elif backend == "postgresql" and not parsed.database:
        yield "storage: name the database in the URL (postgresql+psycopg://user@host/DBNAME)"


_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+")


def _ray_address_problems(address: str | None) -> Iterator[str]:
    """host:port or ray://host:port, or the words Ray itself understands."""
    if address is None or address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not (sep and _HOST.fullmatch(host) and port.isdigit() and 0 < int(port) < 65536):
        yield (
            f"ray_address: {address!r} is not a Ray address; use host:port (the head's GCS "
            "port, e.g. 10.0.0.5:6379), ray://host:10001, auto, or leave it unset for a local Ray"
        )


def _output_dir_problems(out: str) -> Iterator[str]:
    """Checkpoints go here: a writable local directory, or a URI whose store answers."""
    from sweep.locations import shown_path, uri_problem

    if "://" in out:
        scheme = out.split("://", 1)[0]
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
            yield f"output_dir: {shown_path(out)!r} is not a path or a URI (scheme://bucket/path)"
            return
        problem = (
            _unwritable_dir(Path(out.split("://", 1)[1])) if scheme == "file" else uri_problem(out)
        )
    else:
        problem = _unwritable_dir(Path(out))
    if problem:
        yield f"output_dir: {problem}; choose another with --output-dir"


def _unwritable_dir(path: Path) -> str | None:
    """Why `path` cannot be (or become) a directory this process writes in, or None."""
    from sweep.locations import local_dir_problem

    return local_dir_problem(path)


def _tracking_problems(config: SweepConfig) -> Iterator[str]:
    from importlib.util import find_spec

    tracking = config.tracking
    wanted = {
        "wandb": ("wandb", tracking.wandb),
        "mlflow": ("mlflow", tracking.mlflow),
        "tensorboard": ("tensorboardX", tracking.tensorboard),
    }
    for key, (module, section) in wanted.items():
        if section is not None and find_spec(module) is None:
            yield (
                f"tracking.{key}: the {module} package is not installed; "
                "pip install 'babysweep[tracking]' or remove the section"
            )
    mlflow = tracking.mlflow
    if mlflow is not None and mlflow.tracking_uri:
        from sweep.locations import mlflow_uri_problem

        problem = mlflow_uri_problem(mlflow.tracking_uri)
        if problem:
            yield f"tracking.mlflow.tracking_uri: {problem}"
    if mlflow is not None and mlflow.tracking_uri == config.storage:
        # Optuna and MLflow would both keep their Alembic version in `alembic_version`.
        yield (
            "tracking.mlflow.tracking_uri: is the sweep's own store, whose Optuna tables share "
            "Alembic's version table with MLflow's; use another database (the default is "
            "mlflow.db beside the checkpoints) or an MLflow server"
        )


def _data_problems(data: DataConfig) -> Iterator[str]:
    """The splits the stages read (train, dev for selection, test for the final loss)."""
    from trainers.data import SPLITS, corpus_files

    corpus = Path(data.corpus)
    if not path_is_dir(corpus):
        yield f"data.corpus: {corpus} is not a directory; point it at a BabyLM-layout corpus"
    else:
        for split in SPLITS:
            try:
                corpus_files(data, split)
            except TrainerError as exc:
                yield str(exc)
            except OSError as exc:
                yield f"data.corpus: cannot read the {split} split ({exc.strerror or exc})"
    from sweep.data_content import blimp_file_problem, corpus_content_problems

    if path_is_dir(corpus):  # what `sweep data check` finds inside the files
        yield from (f"data.corpus: {p}" for p in corpus_content_problems(corpus))
    blimp = Path(data.blimp)
    if not path_is_dir(blimp) or not any(blimp.glob("*.jsonl")):
        yield f"data.blimp: {data.blimp} holds no BLiMP .jsonl files; point it at the BLiMP data"
    else:
        for path in sorted(blimp.glob("*.jsonl")):
            problem = blimp_file_problem(path)
            if problem:
                yield f"data.blimp: {problem}"
    problem = _unwritable_dir(Path(data.cache_dir)) if data.cache_dir else None
    if problem:
        yield f"data.cache_dir: {problem} (tokenizers and token caches go there); choose another"


def _glue_problems(config: SweepConfig) -> Iterator[str]:
    """GLUE and zero-shot suites run on the listed stages' trials: their files must be there."""
    glue = config.evaluation.glue
    if glue.stages and glue.tasks:
        yield from _finetune_problems(Path(config.data.glue), glue.tasks)
    zero_shot = config.evaluation.zero_shot
    if zero_shot.stages and zero_shot.suites:
        from trainers.evaluate.zeroshot import ZERO_SHOT_SUITES

        root = Path(config.data.root or Path(config.data.glue).parent)
        for suite in zero_shot.suites:
            folder = root / ZERO_SHOT_SUITES[suite].folder
            if not path_is_dir(folder) or not any(folder.glob("*.jsonl")):
                yield (
                    f"evaluation.zero_shot.suites: {folder} holds no {suite} .jsonl files; put "
                    "BabyLM's evaluation_data there (docs/DATA.md) or drop the suite"
                )


def _finetune_problems(root: Path, tasks: Sequence[str]) -> Iterator[str]:
    from trainers.evaluate.tasks import FINETUNE_TASKS, task_files

    if not path_is_dir(root):
        yield (
            f"data.glue: {root} is not a directory; point data.glue at the folder holding "
            "the task folders (MRPC/, RTE/, ...), or set evaluation.glue.stages: []"
        )
        return
    needed: dict[Path, str] = {}
    for task in tasks:
        for name in (task, FINETUNE_TASKS[task].trains_as):  # official or BabyLM's filtered
            for path in task_files(root, name).paths.values():
                needed.setdefault(path, task)
    missing = [path for path in needed if not path.is_file()]
    for path in missing:
        task = needed[path]
        yield (
            f"data.glue: {path} is missing; {task} needs it (docs/DATA.md), or drop "
            f"{task} from evaluation.glue.tasks"
        )
    if missing:
        return
    from sweep.data_content import glue_content_problems

    # the layout, read in full before any trial trains
    yield from (f"data.glue: {p}" for p in glue_content_problems(root, tasks))


# Trials add to the base seed: 1000 per stage, the trial number, and the repeat offset.
_REPEAT_SEED_OFFSET = 10_000  # sweep.stages.REPEAT_SEED_OFFSET


def _seed_problems(config: SweepConfig) -> Iterator[str]:
    stages = config.stages
    trials = [s.trials for s in stages.values() if isinstance(s, SearchStage)]
    seeds = [s.most_seeds for s in stages.values() if isinstance(s, SeededStage)]
    offsets = (
        1000 * (len(stages) - 1) + max(trials, default=0),
        _REPEAT_SEED_OFFSET + max(seeds, default=0),
    )
    largest = config.seed + max(offsets)
    if largest > MAX_SEED:
        yield (
            f"seed: {config.seed} is too large: trials add up to {max(offsets)} to it and NumPy "
            f"and Optuna accept seeds up to {MAX_SEED}; use at most {MAX_SEED - max(offsets)}"
        )


def _param_problems(field: str, name: str, param: Any, base: TrainingConfig) -> Iterator[str]:
    """A distribution's own shape, then every value it can give, checked by TrainingConfig.

    The trainers' field validators are the only bounds: a range is checked at both ends
    (every TrainingConfig bound is monotone), a categorical at every choice, so a value
    `sweep validate` accepts is a value the trainers accept, and the reverse.
    """
    values: list[tuple[str, Any]]
    if isinstance(param, LogNormal | QLogNormal):
        yield from _prior_problems(field, name, param, base)
        return
    if isinstance(param, LogUniform | Uniform | IntRange | OneMinusLogUniform):
        if param.low > param.high:
            yield f"{field}.high: must be >= low ({param.low}); swap them"
            return
        log = isinstance(param, LogUniform | OneMinusLogUniform) or (
            isinstance(param, IntRange) and param.log
        )
        if log and param.low <= 0:
            yield f"{field}.low: a log-scale distribution needs low > 0 (got {param.low})"
            return
        step_problem = _step_problem(param)
        if step_problem:
            yield f"{field}.step: {step_problem}"
            return
        if not isinstance(param, IntRange) and _is_int_field(name):
            yield f"{field}: {name} is an integer; use dist: int (or categorical)"
            return
        if isinstance(param, OneMinusLogUniform):
            values = [("low", 1.0 - param.low), ("high", 1.0 - param.high)]
        elif isinstance(param, Uniform) and param.step is None and param.high > param.low:
            # high is never drawn ([low, high)): the largest value is the float below it
            values = [("low", param.low), ("high", math.nextafter(param.high, param.low))]
        else:
            values = [("low", param.low), ("high", param.high)]
    elif isinstance(param, Categorical):
        values = [(f"choices[{i}]", c) for i, c in enumerate(param.choices)]
    else:
        values = [("", param)]
    for suffix, value in values:
        problem = _training_field_problem(base, name, value)
        if problem:
            where = f"{field}.{suffix}" if suffix else field
            if isinstance(param, OneMinusLogUniform):
                shown = f"= 1 - {getattr(param, suffix)} = {value}"
            elif suffix == "high" and isinstance(param, Uniform) and value != param.high:
                shown = f"values up to {param.high!r}"  # [low, high): high itself is never drawn
            else:
                shown = f"= {value!r}"
            yield f"{where}: {problem} (gives {name} {shown}, which training.{name} refuses)"


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _step_problem(param: Any) -> str | None:
    """Optuna's own rules for a grid (it raises ValueError mid-run otherwise)."""
    step = getattr(param, "step", None)
    if step is None:
        return None
    if step <= 0:
        return f"must be > 0 (got {step}); give the grid's spacing, or leave it out"
    if isinstance(param, IntRange) and param.log and step != 1:
        return f"a log-spaced int range takes only step 1 (got {step}); drop step or log"
    return None


_MAX_VALUE = 2**63 - 1  # the largest integer torch, NumPy and a SQL BIGINT hold


def _prior_problems(
    field: str, name: str, param: LogNormal | QLogNormal, base: TrainingConfig
) -> Iterator[str]:
    """A log-normal prior's bounds, then its smallest and largest value, checked by
    TrainingConfig (the prior reaches 1e-12 of its mass into each tail; see sweep.priors)."""
    from sweep.priors import prior_support, quantile_range

    if param.low is not None and param.high is not None and param.low > param.high:
        yield f"{field}.high: must be >= low ({param.low}); swap them"
        return
    if _is_int_field(name) and not (isinstance(param, QLogNormal) and isinstance(param.q, int)):
        yield f"{field}: {name} is an integer; use dist: q_lognormal with an integer q"
        return
    u_low, u_high = quantile_range(param)
    if u_low >= u_high:
        yield (
            f"{field}: low..high holds none of the prior's mass (mu {param.mu}, sigma "
            f"{param.sigma}); widen them or move mu"
        )
        return
    smallest, largest = prior_support(param)
    if not abs(largest) <= _MAX_VALUE:
        yield (
            f"{field}: mu {param.mu} and sigma {param.sigma} reach {name} = {largest:.3g}, "
            f"beyond what a trial can train with (at most {_MAX_VALUE}); lower them or set high"
        )
        return
    for end, value in (("low", smallest), ("high", largest)):
        problem = _training_field_problem(base, name, value)
        if problem:
            bound = getattr(param, end)
            hint = (
                f"set {end}: to truncate the prior"
                if bound is None
                else f"change {end}: the prior reaches {value!r} at it"
            )
            yield (
                f"{field}.{end}: {problem} (the prior gives {name} = {value!r}, which "
                f"training.{name} refuses); {hint}"
            )


def _training_field_problem(base: TrainingConfig, name: str, value: Any) -> str | None:
    """TrainingConfig's own verdict on `name = value` (strict: no 3.0 for an int, no bools
    for a number), or None when it accepts it."""
    try:
        TrainingConfig.model_validate({**base.model_dump(), name: value}, strict=True)
    except ValidationError as exc:
        errors = [e for e in exc.errors() if e["loc"] and e["loc"][0] == name]
        return "; ".join(e["msg"] for e in errors or exc.errors())
    return None


def _is_int_field(name: str) -> bool:
    annotation = TrainingConfig.model_fields[name].annotation
    return annotation is int or annotation == (int | None)
