"""The shared body of `python -m trainers.pretrain` and `python -m trainers.distill`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from trainers.errors import TrainerError


def run_recipe_cli(argv: Sequence[str] | None, *, distill: bool) -> int:
    """Parse args, train, print one line of metrics per epoch; TrainerError exits 2."""
    what = "a student from teacher checkpoints" if distill else "a teacher from scratch"
    parser = argparse.ArgumentParser(
        prog=f"python -m trainers.{'distill' if distill else 'pretrain'}",
        description=f"Train {what} (one run, per-epoch metrics on stdout).",
    )
    parser.add_argument("--config", type=Path, required=True, help="recipe yaml")
    if distill:
        parser.add_argument(
            "--teachers", required=True, help="comma-separated teacher checkpoint dirs"
        )
    parser.add_argument("--resume", type=Path, help="an output_dir/checkpoints/epoch_N dir")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        from trainers.config import load_recipe_config
        from trainers.recipe import train

        config = load_recipe_config(args.config)
        teachers = [Path(t) for t in args.teachers.split(",") if t] if distill else []
        if distill and not teachers:
            raise TrainerError("--teachers: give at least one teacher checkpoint dir")
        result = train(
            config,
            teacher_dirs=teachers,
            report=_print_epoch,
            resume_from=args.resume,
            progress=not args.quiet,
        )
    except TrainerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"final model: {result.final_dir} ({result.num_parameters:,} parameters)")
    return 0


def _print_epoch(metrics: dict[str, float], checkpoint_dir: Path) -> None:
    order = ["train_loss", "train_ce", "train_kl", "dev_loss", "dev_ppl", "tokens_per_s", "lr"]
    order += ["checkpoint_epoch", "test_loss"]  # the last epoch: the handed-on model's
    shown = " ".join(f"{k}={metrics[k]:.4g}" for k in order if k in metrics)
    print(f"epoch {int(metrics['epoch'])} step {int(metrics['step'])}: {shown}", flush=True)
