"""Peak memory, tokens/s and MFU of a teacher step and a K-teacher student step; prints, never asserts.

Each row is the recipe's own optimizer step (trainers.recipe.TrainingRecipe: AdamW, fused
on CUDA; clipping; bf16 autocast on CUDA; teachers in bf16 inference on CUDA) with the
reference loss (full (B, L, V) logits of the student and every teacher) or the chunked
fused loss (what training runs), side by side in one run:

    python benchmarks/train_step.py                    # tiny + small, V=16000, B=32, L=128, CPU
    python benchmarks/train_step.py --presets tiny --vocab-size 2000 --batch-size 8 --steps 2
    python benchmarks/train_step.py --devices cuda --presets babyllama2-345m --batch-size 64 --compile

Every (preset, device, K, loss) case runs in a fresh process, `--repeats` times: tokens/s
is the best of the repeats (the machine may be shared), memory the highest. Two memory
figures, both from just after setup (model, teachers, data loaded):

- "peak MiB": on CPU the process's resident high-water mark through warm-up and timed
  steps (Linux VmHWM, reset by writing 5 to /proc/self/clear_refs; ru_maxrss where that is
  refused), libraries and allocator slack included; on CUDA torch's max_memory_allocated.
- "step MiB": the tensor bytes a steady-state step (after warm-up: AdamW state exists)
  needs above what is alive before it (activations, gradients, the loss's buffers): on
  CPU from one extra step under the torch profiler's memory timeline, on CUDA the rise of
  max_memory_allocated over the timed steps.

MFU = model FLOPs per token x tokens/s / the device's bf16 dense peak. FLOPs per token
follow nanoGPT/PaLM: 6N + 12 * layers * hidden * L for a trained model, a third of that
for a teacher's forward (N: parameters without the input embedding, a lookup). The peak
comes from DEVICE_PEAK_TFLOPS by device name or from --peak-tflops (needed on CPU).

Teachers are randomly initialised checkpoints of the student's preset (speed does not
depend on the weights). Without the shared data (e.g. on a GPU box), `--corpus synthetic`
writes a random-word corpus in a temp dir.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# bf16 dense tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name();
# the first match wins, so more specific names come first.
DEVICE_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H800", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("RTX 4090", 165.0),
    ("A6000", 155.0),
)

LOSSES = ("reference", "chunked")


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


def device_peak_tflops(device_name: str, override: float | None) -> float | None:
    if override is not None:
        return override
    for key, tflops in DEVICE_PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


def flops_per_token(model: Any, seq_length: int, *, trained: bool) -> float:
    """nanoGPT's estimate: 6N + 12 * layers * hidden * L (training), a third of it (forward)."""
    config = model.config
    matmul_params = sum(p.numel() for p in model.parameters())
    if not config.tie_word_embeddings:
        matmul_params -= model.get_input_embeddings().weight.numel()
    training = 6 * matmul_params + 12 * config.num_hidden_layers * config.hidden_size * seq_length
    return training if trained else training / 3


def _recipe_config(args: argparse.Namespace, *, teachers: int) -> Any:
    from trainers.config import DataConfig, ModelConfig, RecipeConfig, TrainingConfig

    workdir = Path(args.workdir)
    data = DataConfig(
        root=Path(args.corpus).parent,
        corpus=Path(args.corpus),
        vocab_size=args.vocab_size,
        seq_length=args.seq_length,
        # one cache for every case: at least 40 batches, whatever the steps
        max_train_tokens=args.batch_size
        * args.seq_length
        * max(40, (args.steps or 0) + (args.warmup or 0) + 2),
        max_eval_tokens=args.seq_length * 2,
        cache_dir=workdir / "cache",
    )
    training = TrainingConfig(
        epochs=1,
        batch_size=args.batch_size,
        micro_batch_size=args.micro_batch_size,
        alpha=0.5 if teachers else 1.0,
        device=args.device or "cpu",
        threads=args.threads,
        compile=args.compile,
        warmup_steps=0,
    )
    return RecipeConfig(
        data=data, model=ModelConfig(preset=args.preset), training=training, output_dir=workdir
    )


def teacher_dirs(args: argparse.Namespace) -> list[Path]:
    tag = f"{args.preset}-v{args.vocab_size}-L{args.seq_length}"
    return [Path(args.workdir) / f"{tag}-teacher{k}" for k in range(args.teachers)]


def prepare(args: argparse.Namespace) -> None:
    """Tokenizer + token cache and K random teachers, once, outside the measured processes."""
    from trainers.model import build_model
    from trainers.recipe import TrainingRecipe

    config = _recipe_config(args, teachers=0)
    probe = TrainingRecipe(config, progress=False)
    probe._setup_data()
    for teacher_dir in teacher_dirs(args):
        if (teacher_dir / "config.json").is_file():
            continue
        teacher = build_model(
            config.model,
            vocab_size=len(probe.tokenizer),
            bos_id=probe.tokenizer.bos_token_id,
            eos_id=probe.tokenizer.eos_token_id,
            pad_id=probe.tokenizer.pad_token_id,
            seq_length=args.seq_length,
        )
        teacher.save_pretrained(str(teacher_dir))
        probe.tokenizer.save_pretrained(str(teacher_dir))


class _HostMemory:
    """The process's resident memory high-water mark from a reset point (Linux)."""

    def __init__(self) -> None:
        gc.collect()
        self.start_mib = self._status_mib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            self.method = "VmHWM"
        except OSError:
            self.method = "ru_maxrss (whole process)"

    @staticmethod
    def _status_mib(field: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
        return float("nan")

    def peak_mib(self) -> float:
        if self.method == "VmHWM":
            return self._status_mib("VmHWM")
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def step_tensor_peak_mib(step: Any) -> float:
    """Peak bytes of tensors a CPU step allocates above those alive before it (profiled once).

    The CPU counterpart of CUDA's max_memory_allocated rise: what the step's tensors need,
    whatever the allocator keeps around.
    """
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        step()
    live = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action == Action.CREATE:
            live += size
        elif action == Action.DESTROY:
            live -= size
        peak = max(peak, live)
    return peak / 2**20


def run_case(args: argparse.Namespace) -> dict[str, Any]:
    """One (preset, device, K, loss) case, measured in this process."""
    import torch

    from trainers.recipe import TrainingRecipe

    torch.set_num_threads(args.threads)
    config = _recipe_config(args, teachers=args.teachers)
    recipe = TrainingRecipe(
        config,
        teacher_dirs=teacher_dirs(args) if args.teachers else (),
        progress=False,
        loss=args.loss,
    )
    recipe.setup()
    cuda = recipe.device.type == "cuda"
    batches = list(recipe.train_windows.epoch_batches(1, args.batch_size))
    if cuda:  # page-locked, so the recipe's non_blocking copies really overlap
        batches = [batch.pin_memory() for batch in batches]
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        memory_method = "peak: cuda max_memory_allocated; step: its rise during timed steps"
    else:
        host = _HostMemory()
        memory_method = f"peak: process {host.method}; step: torch profiler tensor bytes"

    def steps(n: int, offset: int) -> float:
        started = time.perf_counter()
        for i in range(n):
            recipe._train_step(batches[(offset + i) % len(batches)])
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started

    steps(args.warmup, 0)  # compile, allocator warm-up, AdamW state
    if cuda:
        torch.cuda.synchronize()
        before_step = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    elapsed = steps(args.steps, args.warmup)
    if cuda:
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
        step_mib = (torch.cuda.max_memory_allocated() - before_step) / 2**20
    else:
        peak_mib = host.peak_mib()
        step_mib = step_tensor_peak_mib(lambda: steps(1, args.warmup + args.steps))
    tokens_per_s = args.steps * args.batch_size * args.seq_length / elapsed

    device_name = torch.cuda.get_device_name() if cuda else f"cpu x{args.threads} threads"
    step_flops = flops_per_token(recipe.student, args.seq_length, trained=True)
    for teacher in recipe.teachers.teachers if recipe.teachers else ():
        step_flops += flops_per_token(teacher, args.seq_length, trained=False)
    peak_tflops = device_peak_tflops(device_name, args.peak_tflops)
    return {
        "preset": args.preset,
        "device": device_name,
        "teachers": args.teachers,
        "loss": args.loss,
        "parameters": recipe.num_parameters,
        "vocab": len(recipe.tokenizer),
        "batch_size": args.batch_size,
        "seq_length": args.seq_length,
        "tokens_per_s": tokens_per_s,
        "peak_mib": peak_mib,
        "step_mib": step_mib,
        "memory_method": memory_method,
        "flops_per_token": step_flops,
        "mfu": step_flops * tokens_per_s / (peak_tflops * 1e12) if peak_tflops else None,
    }


def _case_command(args: argparse.Namespace, **case: Any) -> list[str]:
    command = [sys.executable, __file__]
    for name, value in {**vars(args), **case}.items():
        if value is None or value is False or name in ("presets", "devices", "json", "losses"):
            continue
        flag = "--" + name.replace("_", "-")
        command += [flag] if value is True else [flag, str(value)]
    return command


def _run(command: list[str]) -> dict[str, Any] | None:
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        print(f"failed: {' '.join(command[2:])}\n{done.stderr[-3000:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}


def _print_row(row: dict[str, Any], repeats: int) -> None:
    mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "-"
    print(
        f"{row['preset']:16} {row['device'][:22]:22} {row['vocab']:>6} {row['teachers']:>2} "
        f"{row['loss']:10} {row['tokens_per_s']:>10,.0f} {row['peak_mib']:>9,.0f} "
        f"{row['step_mib']:>9,.0f} {mfu:>6}  best of {repeats}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu (+ cuda)")
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    parser.add_argument("--teachers", type=int, default=2, help="K for the student step")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--micro-batch-size", type=int, default=None)
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=16000)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (3 CPU, 30 CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (1 CPU, 5 CUDA)")
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per case")
    parser.add_argument("--compile", action="store_true", help="torch.compile student+teachers")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU")
    parser.add_argument("--corpus", default="auto", help="a BabyLM dir, 'synthetic' or 'auto'")
    parser.add_argument("--workdir", default=None, help="tokenizer cache and teachers")
    parser.add_argument("--json", default=None, help="also write all rows to this file")
    for hidden in ("--case", "--prepare"):
        parser.add_argument(hidden, action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--preset", "--device", "--loss"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.prepare:
        prepare(args)
        return
    if args.case:
        print(json.dumps(run_case(args)), flush=True)
        return

    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="train_step_bench.")
    if args.corpus == "auto":
        from trainers.config import resolve_data_root
        from trainers.errors import TrainerError

        try:
            args.corpus = str(resolve_data_root(None) / "babylm-mini")
        except TrainerError:
            args.corpus = "synthetic"
    if args.corpus == "synthetic":
        args.corpus = str(synthetic_corpus(Path(args.workdir) / "synthetic"))
    print(f"corpus {args.corpus}; workdir {args.workdir}", flush=True)
    print(
        f"B={args.batch_size} L={args.seq_length}; tokens/s best of {args.repeats} fresh "
        "process(es); peak = highest over them",
        flush=True,
    )

    rows = []
    header = (
        f"{'preset':16} {'device':22} {'vocab':>6} {'K':>2} {'loss':10} {'tokens/s':>10} "
        f"{'peak MiB':>9} {'step MiB':>9} {'MFU':>6}"
    )
    for preset in args.presets:
        if _run(_case_command(args, prepare=True, preset=preset, device="cpu")) is None:
            continue
        print(header, flush=True)
        for device in devices:
            on_cuda = device == "cuda"
            timing = {
                "steps": args.steps or (30 if on_cuda else 3),
                "warmup": args.warmup if args.warmup is not None else (5 if on_cuda else 1),
            }
            cases: dict[tuple[int, str], dict[str, Any]] = {}
            for teachers in (0, args.teachers):
                # repeats interleave the losses, so a busy spell on a shared machine hits both
                runs: dict[str, list[dict[str, Any]]] = {loss: [] for loss in args.losses}
                for _ in range(args.repeats):
                    for loss in args.losses:
                        row = _run(
                            _case_command(
                                args, case=True, preset=preset, device=device,
                                teachers=teachers, loss=loss, **timing,
                            )
                        )  # fmt: skip
                        if row:
                            runs[loss].append(row)
                for loss, repeats in runs.items():
                    if not repeats:
                        continue
                    best = max(repeats, key=lambda r: r["tokens_per_s"])
                    best["peak_mib"] = max(r["peak_mib"] for r in repeats)
                    best["step_mib"] = max(r["step_mib"] for r in repeats)
                    best["repeats"] = len(repeats)
                    cases[teachers, loss] = best
                    rows.append(best)
                    _print_row(best, len(repeats))
            _print_summary(preset, device, cases, args.teachers)
    if rows:
        print(f"memory: {rows[0]['memory_method']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def _print_summary(
    preset: str, device: str, cases: dict[tuple[int, str], dict[str, Any]], k: int
) -> None:
    for teachers in (0, k):
        ref, new = cases.get((teachers, "reference")), cases.get((teachers, "chunked"))
        if ref and new:
            print(
                f"  -> {preset} {device} K={teachers}: chunked/reference peak "
                f"{new['peak_mib'] / ref['peak_mib']:.0%}, step memory "
                f"{new['step_mib'] / ref['step_mib']:.0%}, tokens/s "
                f"{new['tokens_per_s'] / ref['tokens_per_s']:.2f}x",
                flush=True,
            )
    for loss in LOSSES:
        teacher_step, student_step = cases.get((0, loss)), cases.get((k, loss))
        if teacher_step and student_step:
            ratio = teacher_step["tokens_per_s"] / student_step["tokens_per_s"]
            print(
                f"  -> {preset} {device} {loss}: student/teacher step time {ratio:.2f} "
                f"(FLOP-ideal {1 + k / 3:.2f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
