"""BLiMP under both scoring conventions on the same checkpoints: overall accuracy and how
many pair decisions flip. Prints figures, asserts nothing.

    python benchmarks/blimp_conventions.py                     # trains two tiny teachers first
    python benchmarks/blimp_conventions.py --checkpoint runs/teacher/final --pairs 1000

The two teachers differ only in data.add_prefix_space: without it the first word's token
differs between lm_eval (" " + sentence) and no_space (sentence), with it they agree.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from trainers.config import DataConfig, ModelConfig, RecipeConfig, TrainingConfig
from trainers.evaluate import blimp_accuracy
from trainers.recipe import train


def tiny_teacher(out: Path, *, add_prefix_space: bool, epochs: int, tokens: int) -> Path:
    """The demo sweep's teacher (tiny preset, 2k vocab, 64-token windows) on capped data."""
    data = DataConfig(
        vocab_size=2000,
        seq_length=64,
        max_train_tokens=tokens,
        max_eval_tokens=30_000,
        add_prefix_space=add_prefix_space,
    )
    training = TrainingConfig(epochs=epochs, lr=3e-3, batch_size=32, warmup_steps=10, device="cpu")
    config = RecipeConfig(
        data=data, model=ModelConfig(preset="tiny"), training=training, output_dir=out
    )
    started = time.perf_counter()
    result = train(config, progress=False)
    print(
        f"teacher add_prefix_space={add_prefix_space}: {epochs} epochs x {tokens:,} tokens in "
        f"{time.perf_counter() - started:.0f} s, dev loss {result.metrics['dev_loss']:.4f}, "
        f"test loss {result.metrics['test_loss']:.4f}"
    )
    return result.final_dir


def compare(checkpoint: Path, blimp: Path, pairs: int) -> None:
    started = time.perf_counter()
    scored = {
        c: blimp_accuracy(checkpoint, blimp, max_pairs_per_paradigm=pairs, convention=c)
        for c in ("lm_eval", "no_space")
    }
    lm_eval, no_space = scored["lm_eval"], scored["no_space"]
    lm_eval_decisions, no_space_decisions = lm_eval.decisions or {}, no_space.decisions or {}
    total = sum(len(d) for d in lm_eval_decisions.values())
    flips = {
        name: sum(a != b for a, b in zip(d, no_space_decisions[name], strict=True))
        for name, d in lm_eval_decisions.items()
    }
    to_correct = sum(
        a and not b
        for name, d in lm_eval_decisions.items()
        for a, b in zip(d, no_space_decisions[name], strict=True)
    )
    changed = sorted(
        (name for name in flips if flips[name]),
        key=lambda n: -abs(lm_eval.by_paradigm[n].accuracy - no_space.by_paradigm[n].accuracy),
    )
    print(f"{checkpoint}: {len(lm_eval.by_paradigm)} paradigms, {total:,} pairs")
    print(f"  overall lm_eval  {lm_eval.overall:.4f}")
    print(f"  overall no_space {no_space.overall:.4f}")
    print(
        f"  flipped pairs    {sum(flips.values())} of {total} ({sum(flips.values()) / total:.1%}); "
        f"{to_correct} become correct under lm_eval, {sum(flips.values()) - to_correct} wrong"
    )
    print(f"  paradigms with a flip: {len(changed)}; largest accuracy changes:")
    for name in changed[:5]:
        a, b = lm_eval.by_paradigm[name].accuracy, no_space.by_paradigm[name].accuracy
        print(f"    {name}: {b:.2f} -> {a:.2f} ({flips[name]} flips)")
    print(f"  scored in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, action="append", help="HF checkpoint dir(s)")
    parser.add_argument("--pairs", type=int, default=100, help="pairs per paradigm")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=120_000, help="training tokens per epoch")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    blimp = DataConfig().resolved().blimp
    checkpoints = args.checkpoint
    if not checkpoints:
        out = Path(tempfile.mkdtemp(prefix="blimp-conventions-"))
        checkpoints = [
            tiny_teacher(
                out / f"prefix{p}", add_prefix_space=p, epochs=args.epochs, tokens=args.tokens
            )
            for p in (False, True)
        ]
    for checkpoint in checkpoints:
        compare(checkpoint, blimp, args.pairs)


if __name__ == "__main__":
    main()
