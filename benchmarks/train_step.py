"""Tokens/s of a teacher step vs a student step distilling from K teachers; prints, never asserts.

A student step is one student forward + backward (6N FLOPs per token) plus K teacher
forwards (2N each), so the FLOP-ideal slowdown is (6N + 2NK) / 6N = 1 + K/3 (1.67 for
K=2). This measures the recipe's own optimizer step (trainers.recipe.TrainingRecipe,
AdamW, clipping, autocast, the distillation loss) on each preset, and the peak memory.

    python benchmarks/train_step.py                       # tiny, small on CPU (+ CUDA if seen)
    python benchmarks/train_step.py --threads 1 --presets tiny
    python benchmarks/train_step.py --devices cuda --presets tiny small babyllama2-345m

Each case runs in a fresh process so its peak memory is its own. Teachers are randomly
initialised checkpoints of the student's preset: speed does not depend on the weights.
Without the shared data (e.g. on a GPU box), `--corpus synthetic` writes a random-word
corpus in a temp dir; speed does not depend on the text either.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def synthetic_corpus(target: Path, words: int = 400_000, lexicon: int = 30_000) -> Path:
    """A BabyLM-layout corpus of Zipf-distributed random words (enough text for a 16k BPE)."""
    rng = random.Random(0)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(lexicon)]
    weights = [1 / (rank + 1) for rank in range(lexicon)]
    for split, n in (("train", words), ("dev", words // 20), ("test", words // 20)):
        (target / split).mkdir(parents=True, exist_ok=True)
        chosen = rng.choices(vocab, weights=weights, k=n)
        lines = [" ".join(chosen[i : i + 12]) for i in range(0, n, 12)]
        (target / split / f"synthetic.{split}").write_text("\n".join(lines) + "\n")
    return target


def run_case(args: argparse.Namespace) -> dict[str, float | str | int]:
    """One (preset, device, teachers) case, measured in this process."""
    import torch

    from trainers.config import DataConfig, ModelConfig, RecipeConfig, TrainingConfig
    from trainers.model import build_model
    from trainers.recipe import TrainingRecipe

    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir)
    data = DataConfig(
        root=Path(args.corpus).parent,
        corpus=Path(args.corpus),
        vocab_size=args.vocab_size,
        seq_length=args.seq_length,
        max_train_tokens=args.batch_size * args.seq_length * (args.steps + args.warmup + 2),
        max_eval_tokens=args.seq_length * 2,
        cache_dir=workdir / "cache",
    )
    training = TrainingConfig(
        epochs=1,
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        alpha=0.5 if args.teachers else 1.0,
        device=args.device,
        threads=args.threads,
        compile=args.compile,
        warmup_steps=0,
    )
    model = ModelConfig(preset=args.preset)
    config = RecipeConfig(data=data, model=model, training=training, output_dir=workdir / "out")

    teacher_dirs = []
    if args.teachers:
        probe = TrainingRecipe(config)
        probe._setup_data()  # the tokenizer the teachers must share
        for k in range(args.teachers):
            teacher_dir = workdir / f"{args.preset}-teacher{k}"
            if not (teacher_dir / "config.json").is_file():
                teacher = build_model(
                    model,
                    vocab_size=len(probe.tokenizer),
                    bos_id=probe.tokenizer.bos_token_id,
                    eos_id=probe.tokenizer.eos_token_id,
                    pad_id=probe.tokenizer.pad_token_id,
                    seq_length=args.seq_length,
                )
                teacher.save_pretrained(str(teacher_dir))
                probe.tokenizer.save_pretrained(str(teacher_dir))
            teacher_dirs.append(teacher_dir)

    recipe = TrainingRecipe(config, teacher_dirs=teacher_dirs, progress=False)
    recipe.setup()
    cuda = recipe.device.type == "cuda"
    batches = list(recipe.train_windows.epoch_batches(1, args.batch_size))
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()

    def steps(n: int, offset: int) -> float:
        started = time.perf_counter()
        for i in range(n):
            recipe._train_step(batches[(offset + i) % len(batches)])
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    steps(args.warmup, 0)
    elapsed = steps(args.steps, args.warmup)
    tokens = args.steps * args.batch_size * args.seq_length
    peak_mib = (
        torch.cuda.max_memory_allocated() / 2**20
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    )
    return {
        "preset": args.preset,
        "device": str(recipe.device) + ("" if cuda else f" x{args.threads} threads"),
        "teachers": args.teachers,
        "parameters": recipe.num_parameters,
        "vocab": len(recipe.tokenizer),
        "tokens_per_s": tokens / elapsed,
        "peak_mib": peak_mib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu (+ cuda)")
    parser.add_argument("--teachers", type=int, default=2, help="K for the student step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=None, help="default 16 CPU, 64 CUDA")
    parser.add_argument("--micro-batch-size", type=int, default=None)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=2000)
    parser.add_argument(
        "--steps", type=int, default=None, help="timed steps (default 8 CPU, 30 CUDA)"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--corpus", default="auto", help="a BabyLM dir, 'synthetic' or 'auto'")
    parser.add_argument("--workdir", default=None, help="tokenizer cache and teachers")
    parser.add_argument("--json", default=None, help="also write all rows to this file")
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:
        print(json.dumps(run_case(args)), flush=True)
        return

    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="train_step_bench."))
    corpus = args.corpus
    if corpus == "auto":
        from trainers.config import resolve_data_root
        from trainers.errors import TrainerError

        try:
            corpus = str(resolve_data_root(None) / "babylm-mini")
        except TrainerError:
            corpus = "synthetic"
    if corpus == "synthetic":
        corpus = str(synthetic_corpus(workdir / "synthetic"))
    print(f"corpus {corpus}; workdir {workdir}", flush=True)

    rows = []
    header = f"{'preset':16} {'device':20} {'params':>10} {'K':>2} {'tokens/s':>10} {'peak MiB':>9}"
    print(header)
    for device in devices:
        on_cuda = device == "cuda"
        for preset in args.presets:
            pair = []
            for teachers in (0, args.teachers):
                command = [
                    sys.executable, __file__, "--case", "--preset", preset, "--device", device,
                    "--teachers", str(teachers), "--threads", str(args.threads),
                    "--batch-size", str(args.batch_size or (64 if on_cuda else 16)),
                    "--seq-length", str(args.seq_length), "--vocab-size", str(args.vocab_size),
                    "--steps", str(args.steps or (30 if on_cuda else 8)),
                    "--warmup", str(args.warmup), "--corpus", corpus, "--workdir", str(workdir),
                ]  # fmt: skip
                if args.micro_batch_size:
                    command += ["--micro-batch-size", str(args.micro_batch_size)]
                if args.compile:
                    command.append("--compile")
                done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
                if done.returncode != 0:
                    print(f"{preset} {device} K={teachers} failed:\n{done.stderr[-3000:]}")
                    break
                row = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(row)
                pair.append(row)
                print(
                    f"{row['preset']:16} {row['device']:20} {row['parameters']:>10,} "
                    f"{row['teachers']:>2} {row['tokens_per_s']:>10,.0f} {row['peak_mib']:>9,.0f}",
                    flush=True,
                )
            if len(pair) == 2:
                ratio = pair[0]["tokens_per_s"] / pair[1]["tokens_per_s"]
                ideal = 1 + args.teachers / 3
                print(
                    f"  -> {preset} on {device}: teacher/student time ratio {ratio:.2f} "
                    f"(FLOP-ideal {ideal:.2f}, {100 * (ratio / ideal - 1):+.0f}%)",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
