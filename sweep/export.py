"""The best model in hand: pick a sweep's best trial, and export any trial's checkpoint.

`sweep best` and `sweep export` are thin wrappers over `find_trial` and `export_trial`.
An exported folder is the trial's Hugging Face checkpoint (weights, config, tokenizer,
the trainers' recipe_config.json) plus a model card README.md, so
`AutoModelForCausalLM.from_pretrained(DIR)` and lm-eval's `--model hf` load it as it is.

Example::

    card = find_trial("sqlite:///demo.db", "demo", by="blimp_overall")
    export_trial(card, Path("models/demo-best"), store_url="sqlite:///demo.db")
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep.errors import SweepError
from sweep.store import (
    StageKind,
    Store,
    TrialStatus,
    ensemble_label,
    mask_url,
    read_evaluations,
    read_trials,
)

__all__ = ["TrialCard", "export_trial", "find_trial", "model_card", "render_trial"]

# Metrics a person reads first, in this order; the Tune bookkeeping (timestamps,
# iteration counters, checkpoint sizes) is left out of cards.
_SHOWN_METRICS = (
    "dev_loss",
    "dev_ppl",
    "test_loss",
    "test_ppl",
    "blimp_overall",
    "train_loss",
    "train_ce",
    "train_kl",
    "epoch",
    "step",
    "tokens_seen",
)
_HIGHER_IS_BETTER = re.compile(r"(blimp|accuracy|acc|f1|mcc)", re.IGNORECASE)
# Training state for resuming; the exported model needs none of it.
_NOT_EXPORTED = {"train_state.pt", ".is_checkpoint", ".metadata.pkl"}
_NOT_SELECTABLE = {
    # Tune's bookkeeping and identifiers: nobody picks a model by these.
    "checkpoint_bytes",
    "iterations_since_restore",
    "time_since_restore",
    "time_this_iter_s",
    "time_total_s",
    "timestamp",
    "training_iteration",
    "worker_started_at",
    "lr",
    "trial_id",
    "number",
    "seed",
    "source_trial_id",
    "optuna_trial_number",
    "duration_s",
    "objective",
}


@dataclass
class TrialCard:
    """One trial as the store holds it, with what a model card and `sweep best` show."""

    sweep: str
    stage: str
    trial_id: int
    number: int
    role: str
    status: str
    seed: int
    params: dict[str, Any]
    metrics: dict[str, float]
    """Each metric's value at the trial's last epoch, plus blimp_overall and GLUE results."""
    checkpoint_uri: str | None
    config: dict[str, Any] | None
    """The trial's resolved recipe (data, model, training) as trainers ran it."""
    sweep_config_hash: str = ""
    code_version: str = ""
    teacher_ids: tuple[int, ...] = ()
    source_trial_id: int | None = None
    teachers: str = ""
    """The teacher ensemble as every command names it (`teachers #2, #0`: ensemble_label)."""
    source: str = ""
    """The trial whose config a baselines/repeats/reference trial re-ran (`students_k2 #1`)."""
    blimp_groups: dict[str, float] = field(default_factory=dict)
    blimp_paradigms: int = 0
    glue: dict[str, dict[str, float]] = field(default_factory=dict)
    selected_by: str | None = None
    selected_from: str = "all stages"
    """The metric this trial is best by, when `find_trial` chose it."""

    @property
    def label(self) -> str:
        """`students #3`: the stage and the trial's Optuna number within it."""
        return f"{self.stage} #{self.number}"


def find_trial(
    url: str,
    sweep: str | None,
    *,
    trial: str | None = None,
    stage: str | None = None,
    by: str = "dev_loss",
) -> TrialCard:
    """The trial named by `trial` (store id `12`, or `STAGE/NUMBER` e.g. `students/3`),
    else the best COMPLETE trial by `by` (lower is better, except BLiMP/accuracy/F1),
    optionally within one stage."""
    frame = read_trials(url, sweep)
    if frame.empty:
        raise SweepError(f"the store {mask_url(url)} holds no trials yet; run `sweep run` first")
    names = sorted(set(frame["sweep"]))
    if sweep is None and len(names) > 1:
        raise SweepError(f"the store holds several sweeps ({', '.join(names)}); pass --sweep NAME")
    sweep = sweep or names[0]
    if trial is not None:
        row = _named_trial(frame, trial)
        chosen_by = None
    else:
        if stage is None and (frame["stage_kind"] == StageKind.STUDENTS).any():
            # the product is a student: without --stage, never the 10x-data reference
            students = frame[frame["stage_kind"] == StageKind.STUDENTS]
            selected_from = "the students stages " + ", ".join(dict.fromkeys(students["stage"]))
            row = _best_row(students, None, by)
        else:
            selected_from = f"stage {stage}" if stage else "all stages"
            row = _best_row(frame, stage, by)
        chosen_by = by
    card = _card(url, sweep, row, _selectable(frame))
    named = {int(r.trial_id): (str(r.stage), int(r.number)) for r in frame.itertuples()}
    card.teachers = ensemble_label([named[i] for i in card.teacher_ids if i in named])
    if card.source_trial_id in named:
        stage, number = named[card.source_trial_id]
        card.source = f"{stage} #{number}"
    card.selected_by = chosen_by
    if chosen_by:
        card.selected_from = selected_from
    return card


def _named_trial(frame: Any, trial: str) -> Any:
    text = trial.strip()
    match = re.fullmatch(r"(?P<stage>[A-Za-z0-9_.-]+)[/:#](?P<number>\d+)", text)
    if text.isdigit():
        rows = frame[frame["trial_id"] == int(text)]
    elif match:
        rows = frame[(frame["stage"] == match["stage"]) & (frame["number"] == int(match["number"]))]
    else:
        raise SweepError(
            f"--trial {trial!r}: give the store trial id `sweep best` prints (e.g. 12) "
            "or STAGE/NUMBER (e.g. students/3)"
        )
    if rows.empty:
        known = ", ".join(f"{r.trial_id} ({r.stage}/{r.number})" for r in frame.itertuples())
        raise SweepError(f"--trial {trial!r}: no such trial in this sweep; it has {known}")
    return rows.iloc[0]


def _best_row(frame: Any, stage: str | None, by: str) -> Any:
    if stage is not None:
        stages = list(dict.fromkeys(frame["stage"]))
        if stage not in stages:
            raise SweepError(f"--stage {stage!r}: no trials in that stage; stages: {stages}")
        frame = frame[frame["stage"] == stage]
    metrics = _selectable(frame)
    if by not in metrics:
        raise SweepError(f"--by {by!r}: not a recorded metric; choose one of {', '.join(metrics)}")
    done = frame[(frame["status"] == TrialStatus.COMPLETE) & frame[by].notna()]
    if done.empty:
        where = f"stage {stage}" if stage else "this sweep"
        raise SweepError(f"{where} has no COMPLETE trial with {by}; see `sweep status`")
    higher = bool(_HIGHER_IS_BETTER.search(by))
    ordered = done.sort_values([by, "trial_id"], ascending=[not higher, True])
    return ordered.iloc[0]


def _selectable(frame: Any) -> list[str]:
    """Numeric metric columns (dev_loss, blimp_overall, glue_..., ...), shown ones first."""
    numeric = [
        c
        for c in frame.columns
        if c not in _NOT_SELECTABLE
        and not c.startswith(("param_", "metric_"))
        and frame[c].dtype.kind == "f"
        and frame[c].notna().any()
    ]
    first = [c for c in _SHOWN_METRICS if c in numeric]
    return first + sorted(c for c in numeric if c not in first)


def _card(url: str, sweep: str, row: Any, metric_columns: list[str]) -> TrialCard:
    with Store(url, upgrade=False) as store:
        sweep_row = store.get_sweep(sweep)
        stored = None
        if sweep_row is not None:
            for stage in store.stages(sweep_row.id):
                if stage.name == row["stage"]:
                    stored = next(
                        (t for t in store.trials(stage.id) if t.id == int(row["trial_id"])), None
                    )
        evaluations = read_evaluations(store, sweep)
    if stored is None:  # read_trials just listed it: only a concurrent --rerun gets here
        raise SweepError(f"trial {row['trial_id']} vanished from the store; run the command again")
    metrics = {name: float(row[name]) for name in metric_columns if math.isfinite(float(row[name]))}
    mine = evaluations[evaluations["trial_id"] == stored.id]
    blimp = mine[(mine["suite"] == "blimp") & (mine["task"] != "overall")]
    blimp = blimp[blimp["metric"] == "accuracy"]
    groups = blimp.groupby("group")["value"].mean().sort_index() if len(blimp) else {}
    glue: dict[str, dict[str, float]] = {}
    for r in mine[mine["suite"] == "glue"].itertuples():
        glue.setdefault(str(r.task), {})[str(r.metric)] = float(r.value)
    return TrialCard(
        sweep=sweep,
        stage=str(row["stage"]),
        trial_id=stored.id,
        number=stored.number,
        role=stored.role,
        status=stored.status,
        seed=stored.seed,
        params=dict(stored.params or {}),
        metrics=metrics,
        checkpoint_uri=stored.checkpoint_uri,
        config=stored.config,
        sweep_config_hash=sweep_row.config_hash if sweep_row else "",
        code_version=sweep_row.code_version if sweep_row else "",
        teacher_ids=tuple(stored.teacher_ids),
        source_trial_id=stored.source_trial_id,
        blimp_groups={str(g): float(v) for g, v in dict(groups).items()},
        blimp_paradigms=int(blimp["task"].nunique()) if len(blimp) else 0,
        glue=glue,
    )


def render_trial(card: TrialCard) -> str:
    """The plain-text summary `sweep best` prints."""
    lines = []
    if card.selected_by:
        arrow = "higher" if _HIGHER_IS_BETTER.search(card.selected_by) else "lower"
        lines.append(
            f"best trial by {card.selected_by} ({arrow} is better) among {card.selected_from} "
            f"of sweep {card.sweep} (--stage NAME for another):"
        )
    teachers = f", distilled from {card.teachers}" if card.teachers else ""
    lines.append(
        f"  trial {card.trial_id}: {card.label}, {card.role}, seed {card.seed}, "
        f"{card.status}{teachers}"
    )
    lines.append(f"  params:     {_inline(card.params) or '(defaults)'}")
    lines.append(f"  metrics:    {_inline(card.metrics)}")
    if card.blimp_groups:
        lines.append(f"  BLiMP ({card.blimp_paradigms} paradigms) by group:")
        lines += [f"    {g:<28} {v:.3f}" for g, v in card.blimp_groups.items()]
    for task, scores in card.glue.items():
        lines.append(f"  GLUE {task}: {_inline(scores)}")
    lines.append(f"  checkpoint: {card.checkpoint_uri or '(none recorded)'}")
    return "\n".join(lines)


def export_trial(card: TrialCard, out: Path, *, store_url: str) -> Path:
    """Copy the trial's HF checkpoint into `out` (new or empty) with a model card README.md.

    Built in a temporary sibling folder, then renamed: an error leaves no half-written `out`.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SweepError(f"--out {out}: exists and is not empty; give a new folder")
    if not card.checkpoint_uri:
        raise SweepError(
            f"trial {card.trial_id} ({card.label}, {card.status}) has no checkpoint to export; "
            "pick a finished trial (`sweep best` prints one)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _copy_checkpoint(card.checkpoint_uri, staging)
        if not (staging / "config.json").is_file() or not any(staging.glob("*.safetensors")):
            raise SweepError(
                f"checkpoint {card.checkpoint_uri}: no Hugging Face model in it "
                "(config.json + *.safetensors); was it written by this version of babysweep?"
            )
        _for_generation(staging)
        (staging / "README.md").write_text(model_card(card, staging, store_url=store_url))
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _for_generation(model_dir: Path) -> None:
    """Training saves `use_cache: false` (no generation there); an exported model generates,
    and without the KV cache every new token recomputes the whole prefix."""
    for name in ("config.json", "generation_config.json"):
        path = model_dir / name
        if path.is_file():
            settings = json.loads(path.read_text())
            if settings.get("use_cache") is False:
                settings["use_cache"] = True
                path.write_text(json.dumps(settings, indent=2) + "\n")


def _copy_checkpoint(uri: str, target: Path) -> None:
    ignore = shutil.ignore_patterns(*_NOT_EXPORTED)
    if "://" not in uri:
        if not Path(uri).is_dir():
            raise SweepError(
                f"checkpoint {uri}: no such directory here; run this where the sweep's "
                "output_dir is mounted"
            )
        shutil.copytree(uri, target, ignore=ignore, dirs_exist_ok=True)
        return
    from ray.tune import Checkpoint  # object stores (s3://, gs://) through Ray's filesystem

    with tempfile.TemporaryDirectory() as fetched:
        try:
            Checkpoint(uri).to_directory(fetched)
        except Exception as exc:  # pyarrow raises many kinds; the message names the cause
            raise SweepError(f"checkpoint {uri}: cannot be fetched ({exc})") from None
        shutil.copytree(fetched, target, ignore=ignore, dirs_exist_ok=True)


def model_card(card: TrialCard, model_dir: Path, *, store_url: str) -> str:
    """README.md for an exported trial: how to load it, its config, data, metrics, provenance."""
    config = card.config or {}
    data, model, training = (config.get(k) or {} for k in ("data", "model", "training"))
    hf = json.loads((model_dir / "config.json").read_text())
    n_params = _parameter_count(model_dir)
    corpus = Path(str(data.get("corpus", "?"))).name
    title = f"{card.sweep} {card.label}"
    front = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [babysweep, babylm, llama, distillation]",
        "---",
    ]
    body = [
        f"# {title}",
        "",
        f"A {hf.get('model_type', 'llama')} causal LM ({n_params:,} parameters) trained as the "
        f"{card.role} trial {card.label} of the babysweep sweep `{card.sweep}` "
        f"(store trial id {card.trial_id}, seed {card.seed}).",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        'model = AutoModelForCausalLM.from_pretrained("PATH/TO/THIS/FOLDER")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH/TO/THIS/FOLDER")',
        "```",
        "",
        "lm-eval: `lm_eval --model hf --model_args pretrained=PATH/TO/THIS/FOLDER --tasks blimp`; "
        "babysweep itself: `python -m trainers.evaluate --checkpoint PATH/TO/THIS/FOLDER --blimp`.",
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
        *(f"| {k} | {_number(v)} |" for k, v in card.metrics.items()),
        "",
        "Losses are mean next-token cross-entropy in nats per token on the corpus's dev/test "
        "split; BLiMP overall is the mean accuracy over paradigms (each pair: the sentence with the higher log-probability wins).",
    ]
    if card.blimp_groups:
        body += [
            "",
            f"### BLiMP by phenomenon group ({card.blimp_paradigms} paradigms)",
            "",
            "| group | accuracy |",
            "|---|---|",
            *(f"| {g} | {v:.3f} |" for g, v in card.blimp_groups.items()),
        ]
        pairs = data.get("blimp_pairs_per_paradigm")
        if pairs:
            body += ["", f"Scored on the first {pairs} pairs of each paradigm (of 1000)."]
    if card.glue:
        body += [
            "",
            "### GLUE (fine-tuned, dev split)",
            "",
            "| task | metric | value |",
            "|---|---|---|",
        ]
        body += [
            f"| {t} | {m} | {_number(v)} |" for t, s in card.glue.items() for m, v in s.items()
        ]
    body += [
        "",
        "## Training",
        "",
        f"- hyperparameters sampled for this trial: {_inline(card.params) or '(defaults)'}",
        f"- architecture: {_inline(model)}; vocabulary {hf.get('vocab_size', '?')}",
        f"- optimisation: {_inline(training)}",
    ]
    if card.teachers:
        body.append(
            f"- distilled from the teacher ensemble {card.teachers} "
            f"(alpha {training.get('alpha')}, temperature {training.get('temperature')})"
        )
    if card.source:
        body.append(f"- re-runs the config of {card.source}")
    body += [
        "",
        "## Data",
        "",
        f"- corpus: `{corpus}` (BabyLM layout: train/dev/test of `<source>.<split>` text files); "
        f"byte-level BPE tokenizer with {data.get('vocab_size', '?')} tokens trained on its "
        "train split, included here",
        f"- window {data.get('seq_length', '?')} tokens; training tokens per epoch capped at "
        f"{data.get('max_train_tokens') or 'none (whole split)'}; dev/test tokens scored capped "
        f"at {data.get('max_eval_tokens') or 'none'}",
        "- BLiMP (Warstadt et al. 2020, CC-BY 4.0) for the grammaticality scores",
        "",
        "## Provenance",
        "",
        f"- sweep `{card.sweep}`, stage `{card.stage}`, Optuna trial number {card.number}, "
        f"store trial id {card.trial_id}",
        f"- store: `{mask_url(store_url)}`",
        f"- sweep config hash {card.sweep_config_hash[:12]}, babysweep {card.code_version}",
        f"- checkpoint: `{card.checkpoint_uri}`",
        "- `recipe_config.json` in this folder is the full resolved training config; "
        "`run_info.json` records the run",
        "",
    ]
    return "\n".join(front + body)


def _parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as weights:
            for key in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
                total += math.prod(weights.get_slice(key).get_shape())
    return total


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:.4g}"


def _inline(values: dict[str, Any]) -> str:
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        shown = _number(value) if isinstance(value, float) else value
        parts.append(f"{key}={shown}")
    return " ".join(parts)
