"""Typed configuration shared by the trainers CLI and sweep.yaml.

One source of truth: `sweep.config.SweepConfig` embeds `DataConfig`, `ModelConfig` and
`TrainingConfig` unchanged, so a trial's resolved config is a `RecipeConfig`.

Example (``python -m trainers.pretrain --config teacher.yaml``)::

    data: {root: ../shared/data, corpus: babylm-mini, vocab_size: 2000, seq_length: 64}
    model: {preset: tiny}
    training: {epochs: 2, lr: 3.0e-3, batch_size: 32}
    output_dir: runs/teacher
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainers.errors import TrainerError

__all__ = [
    "DATA_DIR_ENV",
    "DISTILLATION_FIELDS",
    "HYPERPARAMETERS",
    "MAX_SEED",
    "RUNTIME_FIELDS",
    "DataConfig",
    "ModelConfig",
    "RecipeConfig",
    "TrainingConfig",
    "format_validation_error",
    "load_recipe_config",
    "parse_yaml_bytes",
    "resolve_data_root",
    "validate_yaml_file",
]

DATA_DIR_ENV = "SWEEP_DATA_DIR"
CACHE_DIR_ENV = "SWEEP_CACHE_DIR"
MAX_SEED = 2**32 - 1
"""The largest seed NumPy's legacy seeding and Optuna's samplers accept (the smallest is 0)."""
_REPO_ROOT = Path(__file__).resolve().parents[1]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


MAX_VOCAB_SIZE = 2**20
"""Largest BPE vocabulary a config may ask for (2**20 = 1,048,576; BabyLlama-2 uses 16,000)."""


class DataConfig(_Strict):
    """Where the corpus and evaluation data live, and how much of it a run uses."""

    root: Path | None = None
    """Data root holding the corpus, blimp/ and glue/; None: $SWEEP_DATA_DIR, else ../shared/data."""
    corpus: Path = Path("babylm-mini")
    """BabyLM-layout corpus dir (train/, dev/, test/ of `<source>.<split>` files), under root."""
    blimp: Path = Path("blimp")
    """Dir of BLiMP paradigm .jsonl files, under root."""
    glue: Path = Path("glue")
    """Dir of GLUE tasks (MRPC/, RTE/ with train.tsv, dev.tsv), under root."""
    pipeline: Literal["babysweep", "babyllama2"] = "babysweep"
    """How text becomes training windows. babysweep: each line a document, `<s> tokens`,
    newlines dropped, a tokenizer with all 256 bytes trained on the raw train split, one
    window grid per epoch. babyllama2: the reference's (JLTastet/BabyLlama-2): each file
    cleaned by its source's rules, trained on and encoded whole (newlines kept, no `<s>`),
    a tokenizer whose alphabet is the corpus's bytes, and each window at a fresh random
    offset with N // L - 1 windows per epoch (trainers/data.py, trainers/cleaning.py)."""
    vocab_size: int = Field(2000, ge=260, le=MAX_VOCAB_SIZE)
    """Byte-level BPE vocabulary size, special tokens included (256 bytes + 3 specials at least;
    at most MAX_VOCAB_SIZE: the tokenizers library panics on sizes near 2**62)."""
    add_prefix_space: bool = False
    """Byte-level pre-tokenizer adds a space before each document, so a document's first word
    gets the same token as mid-sentence (BabyLlama-2's tokenizer: true). Under the babyllama2
    pipeline it applies while the tokenizer trains; the streams and checkpoints encode
    without it, as the reference's GPT2TokenizerFast does."""
    min_frequency: int = Field(0, ge=0)
    """BPE merges need a pair seen at least this often (BabyLlama-2's tokenizer: 2)."""
    seq_length: int = Field(64, ge=8)
    """Tokens per training window (BabyLlama-2 uses 128)."""
    max_train_tokens: int | None = Field(None, ge=1)
    """Cap on training tokens per epoch for quick runs; None uses the whole train split."""
    max_eval_tokens: int | None = Field(None, ge=1)
    """Cap on dev/test tokens scored for the loss; None scores the whole split."""
    blimp_pairs_per_paradigm: int | None = Field(None, ge=1)
    """Cap on BLiMP minimal pairs scored per paradigm (1000 each); None scores all."""
    blimp_convention: Literal["lm_eval", "no_space"] = "lm_eval"
    """How a BLiMP sentence is scored: lm_eval: log p(tokens of " " + sentence | BOS), as
    lm-evaluation-harness (target_delimiter " ") and the BabyLM leaderboard; no_space:
    log p(tokens of sentence | BOS), babysweep's scoring before it matched lm-eval."""
    cache_dir: Path | None = None
    """Where tokenizers and token caches are kept; None: $SWEEP_CACHE_DIR, else ~/.cache/babysweep
    (`sweep` lets a set $SWEEP_CACHE_DIR override a given one too)."""

    def resolved(self, base_dir: Path | None = None) -> DataConfig:
        """A copy with every path absolute: root found once, the rest joined under it."""
        root = resolve_data_root(self.root, base_dir)

        def under(p: Path) -> Path:
            return p if p.is_absolute() else (root / p).resolve()

        cache = self.cache_dir
        if cache is None:
            cache = Path(os.environ.get(CACHE_DIR_ENV, Path.home() / ".cache" / "babysweep"))
        elif not cache.is_absolute():
            cache = (base_dir or Path.cwd()) / cache
        return self.model_copy(
            update={
                "root": root,
                "corpus": under(self.corpus),
                "blimp": under(self.blimp),
                "glue": under(self.glue),
                "cache_dir": cache.resolve(),
            }
        )


def resolve_data_root(explicit: Path | None, base_dir: Path | None = None) -> Path:
    """The data root: the configured path, else $SWEEP_DATA_DIR, else ../shared/data.

    A relative configured path is taken relative to `base_dir` (the yaml's folder).
    """
    if explicit is not None:
        path = explicit if explicit.is_absolute() else (base_dir or Path.cwd()) / explicit
        if not path.is_dir():
            raise TrainerError(
                f"data.root: {path} is not a directory; point data.root at the folder "
                "holding babylm-mini/, blimp/ and glue/"
            )
        return path.resolve()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        if not Path(env).is_dir():
            raise TrainerError(f"{DATA_DIR_ENV}={env} is not a directory; fix or unset it")
        return Path(env).resolve()
    candidates = [_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    raise TrainerError(
        "data.root: no data found; set data.root in the yaml or the "
        f"{DATA_DIR_ENV} environment variable (looked in {', '.join(map(str, candidates))})"
    )


PRESETS: dict[str, dict[str, int | bool]] = {
    # CPU tests and demos: ~1M parameters with a 2k vocab.
    "tiny": dict(
        hidden_size=128,
        intermediate_size=384,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        max_position_embeddings=256,
        tie_embeddings=False,
    ),
    # A laptop-GPU or many-core CPU model: ~10M parameters with a 2k vocab.
    "small": dict(
        hidden_size=256,
        intermediate_size=704,
        num_layers=8,
        num_heads=8,
        num_kv_heads=4,
        max_position_embeddings=512,
        tie_embeddings=False,
    ),
    # BabyLlama-2 (arXiv 2409.17312): 345M parameters with a 16k vocab.
    "babyllama2-345m": dict(
        hidden_size=960,
        intermediate_size=2560,
        num_layers=32,
        num_heads=15,
        num_kv_heads=5,
        max_position_embeddings=256,
        tie_embeddings=False,
    ),
}


class ModelConfig(_Strict):
    """A LLaMA architecture: a preset, optionally with explicit sizes overriding it."""

    preset: Literal["tiny", "small", "babyllama2-345m"] | None = "tiny"
    """Named size; None means every size below must be given."""
    hidden_size: int | None = Field(None, ge=8)
    """Model width."""
    intermediate_size: int | None = Field(None, ge=8)
    """SwiGLU MLP width."""
    num_layers: int | None = Field(None, ge=1)
    """Transformer blocks."""
    num_heads: int | None = Field(None, ge=1)
    """Attention (query) heads; must divide hidden_size."""
    num_kv_heads: int | None = Field(None, ge=1)
    """Key/value heads (grouped-query attention); must divide num_heads."""
    max_position_embeddings: int | None = Field(None, ge=8)
    """Longest sequence the model accepts; must be >= data.seq_length."""
    tie_embeddings: bool | None = None
    """Share input and output embeddings (BabyLlama-2 does not)."""

    def sizes(self) -> dict[str, int | bool]:
        """The preset merged with explicit sizes; raises TrainerError on an incomplete model."""
        merged: dict[str, int | bool] = dict(PRESETS[self.preset]) if self.preset else {}
        for key in PRESETS["tiny"]:
            value = getattr(self, key)
            if value is not None:
                merged[key] = value
        missing = [k for k in PRESETS["tiny"] if k not in merged]
        if missing:
            raise TrainerError(f"model.{missing[0]}: required when model.preset is null")
        if int(merged["hidden_size"]) % int(merged["num_heads"]):
            raise TrainerError("model.num_heads: must divide model.hidden_size")
        if int(merged["num_heads"]) % int(merged["num_kv_heads"]):
            raise TrainerError("model.num_kv_heads: must divide model.num_heads")
        return merged

    def check_seq_length(self, seq_length: int) -> None:
        """The one home of "a training sequence fits the model's positions" (the sweep's
        validation, the recipe and build_model all ask this)."""
        positions = int(self.sizes()["max_position_embeddings"])
        if seq_length > positions:
            raise TrainerError(
                f"data.seq_length: {seq_length} exceeds the model's {positions} positions "
                "(model.max_position_embeddings); lower seq_length or raise "
                "model.max_position_embeddings"
            )


class TrainingConfig(_Strict):
    """Optimisation and distillation settings of one training run (one trial)."""

    epochs: int = Field(2, ge=1)
    """Passes over the (capped) training split."""
    lr: float = Field(3e-3, gt=0)
    """Peak AdamW learning rate."""
    batch_size: int = Field(32, ge=1)
    """Logical batch size in sequences; gradient accumulation covers what micro_batch_size can't."""
    micro_batch_size: int | None = Field(None, ge=1)
    """Per-step device batch cap; None means batch_size (no accumulation)."""
    weight_decay: float = Field(0.1, ge=0)
    """AdamW decoupled weight decay (BabyLlama-2 uses 5.0 at lr 7e-4)."""
    beta1: float = Field(0.9, ge=0, lt=1)
    """AdamW beta1."""
    beta2: float = Field(0.95, ge=0, lt=1)
    """AdamW beta2 (BabyLlama-2 and HF Trainer: 0.999)."""
    eps: float = Field(1e-8, gt=0)
    """AdamW epsilon."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    """Learning-rate decay after warmup."""
    warmup_steps: int = Field(20, ge=0)
    """Optimizer steps of linear warmup."""
    grad_clip: float | None = Field(1.0, gt=0)
    """Max global gradient norm; None disables clipping."""
    attention_dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on attention probabilities while training (LlamaConfig.attention_dropout); a
    training-time regulariser, so it lives here: evaluation and teachers never drop."""
    checkpoint: Literal["best", "last"] = "last"
    """Which epoch's model is evaluated (test loss, BLiMP, GLUE) and handed on (ensemble,
    final/): best: lowest dev loss, as the reference's load_best_model_at_end; last."""
    checkpoint_metric: Literal["dev_loss", "dev_distillation_loss"] = "dev_loss"
    """What `checkpoint: best` selects a student's epoch on: dev_loss: the dev CE;
    dev_distillation_loss: the training objective on dev, alpha CE + (1 - alpha) T^2 KL
    under kl_reduction, as the reference's eval_loss (its DistillationTrainer's loss). A run
    without teachers has no KL: both are its dev CE."""
    seed: int = Field(0, ge=0, le=MAX_SEED)
    """Seeds Python, NumPy and torch, and the per-epoch window offsets."""
    alpha: float = Field(1.0, ge=0, le=1)
    """Weight of cross-entropy; 1 - alpha weighs the KL to the teacher ensemble (1 = no teachers).

    What a value means depends on kl_reduction: under token_mean both terms are per-token
    means; under babyllama2 the KL is summed over a window's L positions, so alpha=0.5 there
    weighs the KL as alpha = 1 / (1 + L) (0.0078 at L = 128) does under token_mean."""
    temperature: float = Field(1.0, gt=0)
    """Distillation softmax temperature T; the KL is scaled by T^2."""
    ensemble: Literal["logits", "probs"] = "logits"
    """Teacher combination: mean of logits (BabyLlama-2) or mean of probabilities."""
    kl_reduction: Literal["token_mean", "babyllama2"] = "token_mean"
    """token_mean: KL averaged per non-padding token; babyllama2: KLDivLoss(batchmean) over (B, L, V)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto picks CUDA when available."""
    compile: bool = False
    """torch.compile the student (worth it on GPU for long runs)."""
    threads: int | None = Field(None, ge=1)
    """torch CPU threads; None leaves torch's default (Ray sets it to the trial's CPUs)."""


# TrainingConfig fields that say where and how fast a run goes, not what it learns: never
# hyperparameters of a search space.
RUNTIME_FIELDS = frozenset({"seed", "micro_batch_size", "device", "compile", "threads"})
# Fields that only matter when a student distils from teachers.
DISTILLATION_FIELDS = frozenset(
    {"alpha", "temperature", "ensemble", "kl_reduction", "checkpoint_metric"}
)
HYPERPARAMETERS = tuple(n for n in TrainingConfig.model_fields if n not in RUNTIME_FIELDS)
"""Every TrainingConfig field a sweep may search, in declaration order."""


class RecipeConfig(_Strict):
    """Everything one training run needs: what `python -m trainers.pretrain --config` reads."""

    data: DataConfig = DataConfig()
    """Corpus, tokenizer and caps."""
    model: ModelConfig = ModelConfig()
    """Architecture."""
    training: TrainingConfig = TrainingConfig()
    """Optimisation and distillation."""
    output_dir: Path = Path("runs/recipe")
    """Where the final HF checkpoint and training state are written."""


def format_validation_error(
    err: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    """One line per problem, each naming the dotted field path and what to do.

    A value that fails every member of a union (a distribution or a number) is one problem,
    not one line per member: a misspelt `dist:` names the known ones, a mapping that is a
    distribution reports only the distribution's fields.
    """
    lines: list[str] = []
    unions: dict[tuple[object, ...], list] = {}  # loc before the union -> its errors
    for e in err.errors():
        if e["type"] == "extra_forbidden":  # a misspelt key, inside a union or not
            lines.append(_unknown_key_line(e, prefix, model))
            continue
        at = next((i for i, p in enumerate(e["loc"]) if _is_union_tag(p)), None)
        if at is None:
            lines.append(_problem_line(e, prefix))
            continue
        key = tuple(e["loc"][:at])
        if key not in unions:
            unions[key] = []
            lines.append(f"\0{len(unions) - 1}")  # placeholder: keeps the problems' order
        unions[key].append(e)
    groups = list(unions.values())
    return "\n".join(
        _union_line(groups[int(line[1:])], prefix) if line.startswith("\0") else line
        for line in lines
    )


def _dotted(loc: tuple, prefix: str) -> str:
    dotted = ".".join(str(p) for p in loc if not _is_union_tag(p))
    return f"{prefix}{dotted}" if dotted else (prefix.rstrip(".") or "(top level)")


def _problem_line(e: Mapping[str, Any], prefix: str) -> str:
    if e["type"] == "extra_forbidden":
        msg = "unknown key; remove it or check its spelling"
    elif e["type"] == "missing":
        msg = "required; add it"
    elif e["msg"].startswith("kind: required; one of ") and isinstance(
        (e.get("input") or {}).get("kind") if isinstance(e.get("input"), dict) else None, str
    ):
        # a discriminated union whose tag was given but is not one of its kinds
        kinds = e["msg"].removeprefix("kind: required; one of ")
        msg = f"kind: {e['input']['kind']!r} is not a kind; use one of {kinds}"
    else:
        msg = e["msg"]
        if "input" in e and not isinstance(e["input"], dict | list):
            msg += f" (got {e['input']!r})"
    return f"{_dotted(e['loc'], prefix)}: {msg}"


def _unknown_key_line(e: Mapping[str, Any], prefix: str, model: type[BaseModel] | None) -> str:
    """`unknown key; did you mean 'trials'?` when the model has a key close to it."""
    import difflib

    key = str(e["loc"][-1])
    known = sorted({f for m in _models_at(model, e["loc"][:-1]) for f in m.model_fields})
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else "remove it or check its spelling"
    return f"{_dotted(e['loc'], prefix)}: unknown key; {hint}"


def _models_at(model: type[BaseModel] | None, loc: tuple) -> list[type[BaseModel]]:
    """The models a location inside `model` can be: through fields, dict values, lists and
    tagged unions (a `kind[teachers]` part keeps the member tagged so)."""
    import types
    import typing

    from pydantic import Tag

    def members(tp: Any, tag: str | None = None) -> list[tuple[Any, str | None]]:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            inner, *meta = typing.get_args(tp)
            tags = [m.tag for m in meta if isinstance(m, Tag)]
            return members(inner, tags[0] if tags else tag)
        if origin in (typing.Union, types.UnionType):
            return [m for arg in typing.get_args(tp) for m in members(arg, tag)]
        return [(tp, tag)]

    nodes = members(model) if model is not None else []
    for part in loc:
        step: list[tuple[Any, str | None]] = []
        for tp, _ in nodes:
            origin = typing.get_origin(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                if isinstance(part, str) and part in tp.model_fields:
                    step += members(tp.model_fields[part].annotation)
            elif origin is dict and isinstance(part, str):
                step += members(typing.get_args(tp)[1])
            elif origin is list and isinstance(part, int):
                step += members(typing.get_args(tp)[0])
        if isinstance(part, str) and _is_union_tag(part):
            tagged: list[tuple[Any, str | None]] = [(tp, tag) for tp, tag in nodes if tag == part]
            step = tagged or nodes  # a tag names a union member; any other marker keeps all
        nodes = step
    return [tp for tp, _ in nodes if isinstance(tp, type) and issubclass(tp, BaseModel)]


def _union_line(errors: list[dict], prefix: str) -> str:
    """One line for a value no member of a union accepted."""
    for e in errors:
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            ctx = e.get("ctx") or {}
            field = str(ctx.get("discriminator", "dist")).strip("'")
            known = ", ".join(t.strip() for t in str(ctx.get("expected_tags", "")).split(","))
            path = _dotted(e["loc"], prefix)
            if e["type"] == "union_tag_not_found" or not known:
                return f"{path}: a mapping here needs {field}: (or give a fixed value instead)"
            return f"{path}: unknown {field} {ctx.get('tag')!r}; use one of {known}"
    deepest = max(len(e["loc"]) for e in errors)
    inner = [e for e in errors if len(e["loc"]) == deepest]
    if deepest > min(len(e["loc"]) for e in errors):
        # The value went into one member (a mapping with a known dist): its fields are wrong.
        return "\n".join(_problem_line(e, prefix) for e in inner)
    forms = list(dict.fromkeys(e["msg"].removeprefix("Input should be ") for e in errors))
    expected = ", ".join(forms[:-1]) + (" or " if len(forms) > 1 else "") + forms[-1]
    got = errors[0].get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    return f"{_dotted(errors[0]['loc'], prefix)}: should be {expected}{shown}"


def _is_union_tag(part: object) -> bool:
    # pydantic inserts the union member's name into the location; users never wrote it.
    return isinstance(part, str) and (
        part
        in {
            "loguniform",
            "one_minus_loguniform",
            "lognormal",
            "q_lognormal",
            "uniform",
            "int",
            "categorical",
            "float",
            "str",
            "bool",
        }
        or part.startswith(("function-", "tagged-union", "constrained-"))
        or part.endswith("]")
    )


M = TypeVar("M", bound=BaseModel)


def validate_yaml_file(path: Path, model: type[M]) -> M:
    """Parse a yaml file into `model`; every problem is one TrainerError naming path and field.

    The message has one line per problem. Beyond pydantic's checks it refuses what yaml or
    pydantic would let through and a library would trip over later: nesting deeper than
    MAX_YAML_DEPTH, alias bombs, duplicate keys (yaml keeps the last silently), bytes that
    are not UTF-8, NaN and infinities, integers beyond 64 bits, NUL characters, and a
    boolean where a number belongs (pydantic reads `epochs: true` as 1).
    """
    try:
        if not path.is_file():
            raise TrainerError(f"{path}: no such file; pass the path of your yaml")
        text = path.read_bytes()
    except OSError as exc:
        raise TrainerError(
            f"{path}: cannot read it ({exc.strerror or exc}); check the path"
        ) from None
    except ValueError as exc:  # a NUL character in the path itself
        raise TrainerError(f"{path!r}: not a usable path ({exc})") from None
    raw = parse_yaml_bytes(text, str(path))
    if not isinstance(raw, dict):
        raise TrainerError(f"{path}: the top level must be a mapping of keys")
    problems = list(_value_problems(raw))
    if problems:
        raise TrainerError(f"{path} is invalid:\n" + "\n".join(problems))
    try:
        config = model.model_validate(raw)
    except ValidationError as exc:
        raise TrainerError(
            f"{path} is invalid:\n{format_validation_error(exc, model=model)}"
        ) from None
    problems = list(_coerced_booleans(raw, config, ""))
    if problems:
        raise TrainerError(f"{path} is invalid:\n" + "\n".join(problems))
    return config


MAX_YAML_DEPTH = 32
"""Deepest nesting a config may have (sweep.yaml needs 6); yaml's reader recurses per level."""
_MAX_YAML_VALUES = 100_000  # after aliases are expanded: a "billion laughs" file stops here
_MAX_INT = 2**63 - 1  # what torch, NumPy and a SQL BIGINT hold


def parse_yaml_bytes(text: bytes, name: str) -> object:
    """yaml.safe_load after a streaming pre-pass that refuses, with the key path, what the
    recursive loader would crash on (depth, alias bombs) or silently accept (duplicate keys)."""
    head = text[:64]
    if len(head) >= 4 and (not any(head[0::2]) or not any(head[1::2])):
        # every other byte NUL: UTF-16 without the byte-order mark YAML needs to read it
        raise TrainerError(
            f"{name}: holds NUL bytes, as UTF-16 or UTF-32 text without a byte-order mark "
            "does; save it as UTF-8"
        )
    try:
        _check_yaml_events(text, name)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TrainerError(_yaml_error_line(exc, name)) from None


def _check_yaml_events(text: bytes, name: str) -> None:
    # One frame per open collection: [is_mapping, expecting_key, key_or_index, keys_seen,
    # values_inside, anchor]. The parser is a state machine, so no depth can overflow it.
    stack: list[list[Any]] = []
    anchors: dict[str, int] = {}
    total = 0

    def where() -> str:
        parts = [str(f[2]) if f[0] else f"[{f[2]}]" for f in stack if f[2] is not None]
        return ".".join(parts).replace(".[", "[") or "(top level)"

    def value_done(size: int) -> None:
        nonlocal total
        total += size
        if total > _MAX_YAML_VALUES:
            raise TrainerError(
                f"{name}: {where()}: the file expands to more than {_MAX_YAML_VALUES} values "
                "(through aliases); write the values out"
            )
        if not stack:
            return
        frame = stack[-1]
        frame[4] += size
        if frame[0]:
            frame[1] = True
        else:
            frame[2] += 1

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.ScalarEvent):
            frame = stack[-1] if stack else None
            if frame is not None and frame[0] and frame[1]:  # a mapping key
                key = event.value
                if key in frame[3] and key != "<<":
                    line = event.start_mark.line + 1 if event.start_mark else "?"
                    frame[2] = key
                    raise TrainerError(
                        f"{name}: {where()}: duplicate key (again on line {line}); "
                        "keep one (yaml would silently use the last)"
                    )
                frame[3].add(key)
                frame[1], frame[2] = False, key
                continue
            if event.anchor:
                anchors[event.anchor] = 1
            value_done(1)
        elif isinstance(event, yaml.CollectionStartEvent):
            if stack and stack[-1][0] and stack[-1][1]:
                stack[-1][1], stack[-1][2] = False, "<complex key>"
            if len(stack) >= MAX_YAML_DEPTH:
                raise TrainerError(
                    f"{name}: {where()}: nested more than {MAX_YAML_DEPTH} levels deep; "
                    "a config needs a handful"
                )
            mapping = isinstance(event, yaml.MappingStartEvent)
            stack.append([mapping, True, None if mapping else 0, set(), 1, event.anchor])
        elif isinstance(event, yaml.CollectionEndEvent):
            frame = stack.pop()
            if frame[5]:
                anchors[frame[5]] = frame[4]
            value_done(frame[4])
        elif isinstance(event, yaml.AliasEvent):
            if any(frame[5] == event.anchor for frame in stack):
                # `x: &x [1, *x]`: the value would contain itself, and every walk of it loops
                raise TrainerError(
                    f"{name}: {where()}: the alias *{event.anchor} is inside the value it "
                    f"names (&{event.anchor}), so that value would contain itself; write it out"
                )
            if stack and stack[-1][0] and stack[-1][1]:
                stack[-1][1], stack[-1][2] = False, f"*{event.anchor}"
                continue
            value_done(anchors.get(event.anchor or "", 1))


def _yaml_error_line(exc: yaml.YAMLError, name: str) -> str:
    """One line: where the yaml is broken and how."""
    if isinstance(exc, yaml.reader.ReaderError):
        if exc.encoding == "unicode":  # a control character in otherwise good text
            return (
                f"{name}: character {exc.position} (U+{exc.character:04X}) is not allowed in "
                "YAML; remove it"
            )
        return (
            f"{name}: byte {exc.position} (0x{exc.character:02x}) is not {exc.encoding} text; "
            "save the file as UTF-8"
        )
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    detail = f"{context}, {problem}" if context else problem
    return f"{name}: {at}not valid YAML ({' '.join(str(detail).split())})"


def _value_problems(raw: object) -> Iterator[str]:
    """Values no field accepts: NaN/inf, integers beyond 64 bits, NUL characters."""
    stack: list[tuple[str, object]] = [("", raw)]
    while stack:
        where, value = stack.pop()
        label = where or "(top level)"
        if isinstance(value, dict):
            for key, item in reversed(value.items()):  # reversed: reported in file order
                if isinstance(key, str) and "\x00" in key:
                    yield f"{label}: a key contains a NUL character; remove it"
                    continue
                stack.append((f"{where}.{key}" if where else str(key), item))
        elif isinstance(value, list):
            stack.extend((f"{label}[{i}]", item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, float) and not math.isfinite(value):
            yield f"{label}: {value} is not a finite number; give a finite value"
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > _MAX_INT:
            yield f"{label}: {value:.3g} is too large (at most {_MAX_INT}); give a smaller integer"
        elif isinstance(value, str) and "\x00" in value:
            yield f"{label}: contains a NUL character; remove it"


def _coerced_booleans(raw: object, parsed: object, where: str) -> Iterator[str]:
    """Where pydantic turned a yaml true/false into a number (`epochs: true` -> 1)."""
    if isinstance(raw, bool):
        if not isinstance(parsed, bool) and isinstance(parsed, int | float):
            kind = "an integer" if isinstance(parsed, int) else "a number"
            yield f"{where or '(top level)'}: expected {kind}, got {str(raw).lower()}"
    elif isinstance(raw, dict):
        for key, item in raw.items():
            if isinstance(parsed, BaseModel):
                if not isinstance(key, str) or key not in type(parsed).model_fields:
                    continue
                value = getattr(parsed, key)
            elif isinstance(parsed, dict):
                value = parsed.get(key, parsed.get(str(key)))
            else:
                continue
            yield from _coerced_booleans(item, value, f"{where}.{key}" if where else str(key))
    elif isinstance(raw, list) and isinstance(parsed, list | tuple):
        for i, (item, value) in enumerate(zip(raw, parsed, strict=False)):
            yield from _coerced_booleans(item, value, f"{where}[{i}]")


def load_recipe_config(path: Path) -> RecipeConfig:
    """Read and validate a recipe yaml; paths in it are relative to its folder."""
    config = validate_yaml_file(path, RecipeConfig)
    base = path.resolve().parent
    output = config.output_dir if config.output_dir.is_absolute() else base / config.output_dir
    return config.model_copy(update={"data": config.data.resolved(base), "output_dir": output})
