"""Evaluate any Hugging Face LLaMA checkpoint: loss, BLiMP per group, GLUE.

    python -m trainers.evaluate --checkpoint runs/teacher/final --blimp --glue mrpc,rte
    python -m trainers.evaluate --checkpoint exported-model --split test --max-eval-tokens 50000

The loss is scored on the corpus split (`--split`) with the checkpoint's own tokenizer;
paths default to the data root ($SWEEP_DATA_DIR, else ../shared/data), as in training.
A checkpoint written by trainers also lends its window length from recipe_config.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from trainers.errors import TrainerError


def main(argv: Sequence[str] | None = None) -> int:
    """Parse args, evaluate, print one line per result; TrainerError exits 2."""
    parser = argparse.ArgumentParser(
        prog="python -m trainers.evaluate",
        description="Print the loss, BLiMP per phenomenon group and GLUE of an HF checkpoint.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="HF model folder")
    parser.add_argument(
        "--split", choices=("dev", "test"), default="dev", help="corpus split for the loss"
    )
    parser.add_argument("--blimp", action="store_true", help="score BLiMP minimal pairs")
    parser.add_argument(
        "--glue",
        default="",
        help="comma-separated (Super)GLUE tasks, e.g. mrpc,rte; all: BabyLM's 11",
    )
    parser.add_argument(
        "--zero-shot",
        default="",
        help="comma-separated suites: blimp_filtered,blimp_supplement,ewok",
    )
    parser.add_argument("--data-root", type=Path, help="folder of corpus, blimp/, glue/")
    parser.add_argument("--corpus", type=Path, help="BabyLM-layout corpus (under the root)")
    parser.add_argument(
        "--max-eval-tokens", type=int, help="cap on the tokens scored (default: the trial's)"
    )
    parser.add_argument(
        "--blimp-pairs", type=int, help="cap on BLiMP pairs per paradigm (default: the trial's)"
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="score the whole split and every BLiMP pair, not the caps the trial used",
    )
    parser.add_argument(
        "--blimp-convention",
        choices=["lm_eval", "no_space"],
        default="lm_eval",
        help='lm_eval: score " " + sentence after BOS, as lm-eval (default); no_space: the bare sentence',
    )
    parser.add_argument("--glue-epochs", type=int, default=1, help="GLUE fine-tuning epochs")
    parser.add_argument("--glue-max-train", type=int, help="cap on GLUE training examples")
    parser.add_argument("--glue-max-eval", type=int, help="cap on GLUE dev examples")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # each result line as it comes, piped too
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    try:
        results = evaluate_checkpoint(args)
    except TrainerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def evaluate_checkpoint(args: argparse.Namespace) -> dict:
    from trainers.config import DataConfig
    from trainers.evaluate import (
        FINETUNE_TASKS,
        blimp_accuracy,
        evaluate_loss,
        glue_scores,
        not_above_majority,
    )
    from trainers.evaluate.glue import GLUE_TASKS, glue_average, read_glue_task
    from trainers.evaluate.zeroshot import ZERO_SHOT_SUITES, zero_shot_accuracy
    from trainers.model import load_model

    checkpoint: Path = args.checkpoint
    tasks = [t.strip().lower() for t in args.glue.split(",") if t.strip()]
    tasks = list(GLUE_TASKS) if tasks == ["all"] else tasks
    unknown = [t for t in tasks if t not in GLUE_TASKS]
    if unknown:
        raise TrainerError(
            f"--glue: unknown task {unknown[0]!r}; choose from {', '.join(GLUE_TASKS)} or all"
        )
    suites = [s.strip() for s in args.zero_shot.split(",") if s.strip()]
    unknown = [s for s in suites if s not in ZERO_SHOT_SUITES]
    if unknown:
        raise TrainerError(
            f"--zero-shot: unknown suite {unknown[0]!r}; choose from {', '.join(ZERO_SHOT_SUITES)}"
        )
    root = DataConfig(root=args.data_root).resolved().root
    assert root is not None
    for task in tasks:  # every task file's layout, before any model work
        for split in ("train", "dev"):
            read_glue_task(root / "glue", task, split)
    model = load_model(checkpoint, what="--checkpoint")  # one clear error before any work
    n_params = sum(p.numel() for p in model.parameters())
    caps, source = _caps(checkpoint, args)
    data = DataConfig(
        root=args.data_root,
        seq_length=_window(checkpoint, model.config.max_position_embeddings),
        **caps,
        **({"corpus": args.corpus} if args.corpus else {}),
    ).resolved()
    print(f"checkpoint: {checkpoint} ({n_params:,} parameters)", flush=True)
    shown = ", ".join(f"{k}={v}" for k, v in caps.items() if v is not None) or "none"
    print(f"caps: {shown} ({source})", flush=True)
    results: dict = {"checkpoint": str(checkpoint), "parameters": n_params}
    progress = sys.stderr.isatty()  # bars in a terminal; none when piped or captured (tests)

    loss = evaluate_loss(checkpoint, data, args.split, progress=progress)
    results[f"{args.split}_loss"] = loss
    print(
        f"{args.split}_loss: {loss:.4f} nats/token (ppl {math.exp(loss):.2f}) on "
        f"{data.corpus.name}/{args.split}, {data.seq_length}-token windows",
        flush=True,
    )
    if args.blimp:
        blimp = blimp_accuracy(
            model,
            data.blimp,
            tokenizer=_tokenizer(checkpoint),
            max_pairs_per_paradigm=data.blimp_pairs_per_paradigm,
            device=args.device,
            convention=args.blimp_convention,
            progress=progress,
        )
        pairs = sum(s.n for s in blimp.by_paradigm.values())
        print(
            f"blimp_overall: {blimp.overall:.4f} ({len(blimp.by_paradigm)} paradigms, {pairs} pairs, "
            f"{blimp.convention} convention)"
        )
        for group, accuracy in blimp.by_group.items():
            print(f"  {group:<28} {accuracy:.4f}")
        results["blimp_overall"] = blimp.overall
        results["blimp_groups"] = blimp.by_group
        results["blimp_paradigms"] = {k: v.accuracy for k, v in blimp.by_paradigm.items()}
    if tasks:
        scores = glue_scores(
            checkpoint,
            data.glue,
            tasks=tasks,
            epochs=args.glue_epochs,
            max_train_examples=args.glue_max_train,
            max_eval_examples=args.glue_max_eval,
            device=args.device,
            progress=progress,
        )
        results["glue"] = {}
        for task, score in scores.items():
            metrics = FINETUNE_TASKS[task].metrics
            behind = not_above_majority(score)
            print(
                f"glue {task}: {_scores(score, metrics)} (n={score['n']} dev examples)\n"
                f"  majority class (always {int(score['majority_class'])}): "
                f"{_scores(score, metrics, 'majority_')}; "
                + (f"NOT above it on {', '.join(behind)}" if behind else "beaten")
            )
            results["glue"][task] = {k: v for k, v in score.items() if k != "group"}
            results["glue"][task]["not_above_majority"] = behind
        results["glue_average"] = glue_average(scores)
        majority = glue_average(
            {
                t: {FINETUNE_TASKS[t].primary: s[f"majority_{FINETUNE_TASKS[t].primary}"]}
                for t, s in scores.items()
            }
        )
        results["glue_average_majority"] = majority
        print(
            f"glue_average: {results['glue_average']:.4f} ({len(scores)} tasks; "
            f"majority classes: {majority:.4f})"
        )
    for suite in suites:
        found = zero_shot_accuracy(
            model,
            root / ZERO_SHOT_SUITES[suite].folder,
            suite,
            tokenizer=_tokenizer(checkpoint),
            max_items_per_subtask=data.blimp_pairs_per_paradigm,
            device=args.device,
            progress=progress,
        )
        print(f"{suite}: {found.overall:.4f} ({len(found.by_subtask)} subtasks)")
        results[suite] = {"overall": found.overall, "subtasks": found.by_subtask}
    return results


_CAPS = {"max_eval_tokens": "max_eval_tokens", "blimp_pairs_per_paradigm": "blimp_pairs"}


def _caps(checkpoint: Path, args: argparse.Namespace) -> tuple[dict, str]:
    """The dev-token and BLiMP caps to score under, and a phrase saying where they came from:
    the flags, else the trial's own (recipe_config.json), so the numbers match the trial's;
    --full lifts both."""
    if args.full:
        return dict.fromkeys(_CAPS), "--full: the whole split and every BLiMP pair"
    recipe = checkpoint / "recipe_config.json"
    trial: dict = {}
    if recipe.is_file():
        try:
            trial = json.loads(recipe.read_text()).get("data", {})
        except (ValueError, AttributeError):
            trial = {}
    caps = {
        key: getattr(args, flag) if getattr(args, flag) is not None else trial.get(key)
        for key, flag in _CAPS.items()
    }
    if all(getattr(args, flag) is not None for flag in _CAPS.values()):
        return caps, "from the flags"
    if trial:
        return caps, "the trial's, from recipe_config.json; --full scores the whole split"
    return caps, "no recipe_config.json: the whole split; --max-eval-tokens caps it"


def _scores(score: dict, metrics: Sequence[str], prefix: str = "") -> str:
    return " ".join(f"{m}={score[prefix + m]:.4f}" for m in metrics)


def _window(checkpoint: Path, max_positions: int) -> int:
    """The window the checkpoint was trained on (recipe_config.json), else min(128, its max)."""
    recipe = checkpoint / "recipe_config.json"
    if recipe.is_file():
        try:
            return int(json.loads(recipe.read_text())["data"]["seq_length"])
        except (ValueError, KeyError, TypeError):
            pass  # not a trainers recipe: fall back to the model's own limit
    return min(128, int(max_positions))


def _tokenizer(checkpoint: Path):
    from trainers.data import load_tokenizer

    return load_tokenizer(checkpoint)


if __name__ == "__main__":
    sys.exit(main())
