"""One training run: a teacher (pure CE) or a student distilling from K frozen teachers.

Reads top to bottom like torchtune's knowledge-distillation recipe: `setup()` calls one
`_setup_*` per part (runtime, data, student, teachers, optimizer), then `train()` runs
epochs of (train, evaluate, save, report), and `save_final()` writes the HF model.

After the last epoch the run hands on one model (`training.checkpoint`): the last epoch's,
or the epoch with the lowest dev loss (as HF Trainer's load_best_model_at_end, which the
reference uses): the dev CE, or for a student `training.checkpoint_metric:
dev_distillation_loss`, the distillation objective on dev (the reference's eval_loss). That model is scored on the test split, and is what the last report's
checkpoint, final/ and every later evaluation hold.

Example::

    from trainers.config import load_recipe_config
    from trainers.recipe import train

    result = train(load_recipe_config(Path("examples/trainers/teacher.yaml")))
    print(result.metrics["dev_loss"], result.final_dir)
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from trainers.config import RecipeConfig
from trainers.data import eval_windows, load_tokenizer, prepare_corpus, split_tokens, train_windows
from trainers.errors import NonFiniteLossError, TrainerError
from trainers.evaluate.loss import mean_token_loss
from trainers.losses import DistillationLoss, chunked_distillation_loss, distillation_loss
from trainers.model import build_model, check_model_dir, count_parameters, load_model, to_device
from trainers.teachers import TeacherEnsemble, check_teacher_dir

__all__ = ["EvalFn", "ReportFn", "StepFn", "TrainResult", "TrainingRecipe", "train"]

log = logging.getLogger(__name__)

ReportFn = Callable[[dict[str, float], Path], None]
"""Called after every epoch with the metrics and a complete checkpoint dir (copy it to keep it)."""

StepFn = Callable[[int, dict[str, float]], None]
"""Called after every optimizer step with the global step and its loss, ce and kl."""
EvalFn = Callable[[int, int, float], None]
"""Called after a dev evaluation within an epoch with the global step, the training tokens
seen so far and the dev loss (see `eval_every`)."""

TRAIN_STATE_FILE = "train_state.pt"
RECIPE_CONFIG_FILE = "recipe_config.json"
RUN_INFO_FILE = "run_info.json"
BEST_MODEL_DIR = "best_model"
"""Inside an epoch checkpoint: the best epoch's weights when it is not this epoch (checkpoint: best)."""


@dataclass
class TrainResult:
    """What a finished run leaves: the final HF checkpoint and its metrics."""

    final_dir: Path
    metrics: dict[str, float]
    """The last epoch's metrics, with test_loss, checkpoint_epoch and checkpoint_dev_loss of
    the handed-on model."""
    history: list[dict[str, float]] = field(default_factory=list)
    """Every epoch's metrics, resumed epochs included."""
    num_parameters: int = 0


def train(
    config: RecipeConfig,
    *,
    teacher_dirs: Sequence[Path] = (),
    report: ReportFn | None = None,
    resume_from: Path | None = None,
    progress: bool = True,
    on_step: StepFn | None = None,
    eval_every: int | None = None,
    on_eval: EvalFn | None = None,
) -> TrainResult:
    """Train one model for config.training.epochs epochs and save it under config.output_dir.

    With teacher_dirs, the student distils from their ensemble (unless training.alpha == 1,
    which never runs a teacher); without, it trains on CE alone whatever alpha says.
    After each epoch a checkpoint is written to output_dir/checkpoints/epoch_N (only the
    latest is kept) and passed to `report`; resume_from such a dir continues after it.
    With eval_every, dev loss is also evaluated every that many optimizer steps within an
    epoch and passed to `on_eval` (it changes nothing the run trains or hands on).
    """
    recipe = TrainingRecipe(config, teacher_dirs=teacher_dirs, report=report, progress=progress)
    recipe.on_step = on_step
    recipe.eval_every, recipe.on_eval = eval_every, on_eval
    recipe.setup(resume_from=resume_from)
    return recipe.train()


class TrainingRecipe:
    """Setup, train loop, evaluate, save; see the module docstring."""

    def __init__(
        self,
        config: RecipeConfig,
        *,
        teacher_dirs: Sequence[Path] = (),
        report: ReportFn | None = None,
        progress: bool = True,
        loss: Literal["chunked", "reference"] = "chunked",
    ) -> None:
        resolved = {"data": config.data.resolved(), "output_dir": Path(config.output_dir).resolve()}
        self.config = config.model_copy(update=resolved)
        self.teacher_dirs = [Path(d) for d in teacher_dirs]
        self.report = report
        self.on_step: StepFn | None = None
        self.eval_every: int | None = None
        """Optimizer steps between two dev evaluations within an epoch (None: epoch ends only)."""
        self.on_eval: EvalFn | None = None
        self.progress = progress
        self.loss = loss
        """chunked: the fused chunked loss (training's default); reference: full logits."""
        self.start_epoch = 1
        self.global_step = 0
        self.tokens_seen = 0
        self.history: list[dict[str, float]] = []
        # checkpoint: best keeps the best epoch's weights here until the run hands them on
        self.best_dir = Path(self.config.output_dir) / BEST_MODEL_DIR
        self.handed_on = False

    # --- setup -------------------------------------------------------------------------

    def setup(self, resume_from: Path | None = None) -> None:
        self._check_inputs(resume_from)
        self._setup_runtime()
        self._setup_data()
        train_state = self._read_train_state(resume_from) if resume_from else None
        self._setup_student(resume_from)
        self._setup_teachers()
        self._setup_optimizer()
        if resume_from is not None and train_state is not None:
            self._restore_train_state(train_state)
            self._restore_best(Path(resume_from))

    def _check_inputs(self, resume_from: Path | None) -> None:
        """Fail fast, before any tokenizing, on what the user can fix."""
        self.config.model.check_seq_length(self.config.data.seq_length)
        for teacher_dir in self.teacher_dirs:
            check_model_dir(teacher_dir, what="teacher")
        if resume_from is not None and not Path(resume_from).is_dir():
            raise TrainerError(f"resume_from {resume_from}: no such directory")

    def _setup_runtime(self) -> None:
        training = self.config.training
        if training.device == "cuda" and not torch.cuda.is_available():
            raise TrainerError("training.device: cuda requested but no GPU is visible; use auto")
        use_cuda = training.device == "cuda" or (
            training.device == "auto" and torch.cuda.is_available()
        )
        self.device = torch.device("cuda" if use_cuda else "cpu")
        if training.threads is not None:
            torch.set_num_threads(training.threads)
        _seed_everything(training.seed)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA (fp32 master weights); plain fp32 on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _setup_data(self) -> None:
        data = self.config.data
        corpus = prepare_corpus(data, splits=("train", "dev", "test"))
        self.tokenizer_dir = corpus.tokenizer_dir
        self.tokenizer = load_tokenizer(corpus.tokenizer_dir)
        self.train_windows = train_windows(
            data, split_tokens(data, "train", corpus.tokenizer_dir), self.config.training.seed
        )
        self.dev_windows = eval_windows(
            split_tokens(data, "dev", corpus.tokenizer_dir), data.seq_length
        )
        self.test_windows = eval_windows(
            split_tokens(data, "test", corpus.tokenizer_dir), data.seq_length
        )

    def _setup_student(self, resume_from: Path | None) -> None:
        if resume_from is not None:
            self.student = load_model(Path(resume_from), what="resume_from")
            if self.student.config.vocab_size != len(self.tokenizer):
                raise TrainerError(
                    f"resume_from {resume_from}: its vocab differs from data.vocab_size's "
                    "tokenizer; resume with the config the checkpoint was trained with"
                )
        else:
            self.student = build_model(
                self.config.model,
                vocab_size=len(self.tokenizer),
                bos_id=self.tokenizer.bos_token_id,
                eos_id=self.tokenizer.eos_token_id,
                pad_id=self.tokenizer.pad_token_id,
                seq_length=self.config.data.seq_length,
                attention_dropout=self.config.training.attention_dropout,
            )
        to_device(self.student, self.device).train()
        self.num_parameters = count_parameters(self.student)
        log.info("training on %s", self.device)
        self.forward_student = (
            torch.compile(self.student) if self.config.training.compile else self.student
        )
        # the decoder without its lm_head: the chunked loss applies the head chunk by chunk
        body = self.student.model
        self.forward_student_body = torch.compile(body) if self.config.training.compile else body

    def _setup_teachers(self) -> None:
        self.teachers: TeacherEnsemble | None = None
        backend = self.tokenizer.backend_tokenizer
        seq_length = self.config.data.seq_length
        if self.config.training.alpha >= 1.0:
            # alpha = 1 is plain CE: check the dirs, but never load or run a teacher.
            for teacher_dir in self.teacher_dirs:
                check_teacher_dir(teacher_dir, student_tokenizer=backend, seq_length=seq_length)
            return
        if self.teacher_dirs:
            self.teachers = TeacherEnsemble(
                self.teacher_dirs,
                student_tokenizer=backend,
                seq_length=seq_length,
                device=self.device,
                compile=self.config.training.compile,
            )

    def _setup_optimizer(self) -> None:
        training = self.config.training
        # Decay matrices and embeddings only; norms' gains stay undecayed (as HF Trainer).
        params = [p for p in self.student.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": training.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(
            groups,
            lr=training.lr,
            betas=(training.beta1, training.beta2),
            eps=training.eps,
            fused=self.device.type == "cuda",
        )
        self.micro_batch_size = min(
            training.micro_batch_size or training.batch_size, training.batch_size
        )
        self.steps_per_epoch = self.train_windows.batches_per_epoch(training.batch_size)
        total_steps = self.steps_per_epoch * training.epochs
        warmup = min(training.warmup_steps, total_steps)
        if training.schedule == "cosine":
            self.scheduler = get_cosine_schedule_with_warmup(self.optimizer, warmup, total_steps)
        elif training.schedule == "linear":
            self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup, total_steps)
        else:
            self.scheduler = get_constant_schedule_with_warmup(self.optimizer, warmup)

    # --- train -------------------------------------------------------------------------

    def train(self) -> TrainResult:
        training = self.config.training
        epochs = training.epochs
        for epoch in range(self.start_epoch, epochs + 1):
            train_metrics = self._train_epoch(epoch)
            dev_loss = self.evaluate()
            metrics = {
                "epoch": float(epoch),
                "step": float(self.global_step),
                **train_metrics,
                "dev_loss": dev_loss,
                "dev_ppl": math.exp(min(dev_loss, 50.0)),
                "lr": float(self.scheduler.get_last_lr()[0]),
                "tokens_seen": float(self.tokens_seen),
            }
            if self.teachers is not None and training.checkpoint_metric != "dev_loss":
                metrics["dev_distillation_loss"] = self.evaluate_distillation()
            self.history.append(metrics)
            if training.checkpoint == "best" and self._best_epoch() == epoch < epochs:
                self._keep_best()
            if epoch == epochs:
                metrics.update(self._hand_on())  # the same dict as history[-1]
            checkpoint_dir = self.save_checkpoint(epoch)
            if self.report is not None:
                self.report(dict(metrics), checkpoint_dir)
        final_dir = self.save_final()
        return TrainResult(
            final_dir=final_dir,
            metrics=dict(self.history[-1]) if self.history else {},
            history=[dict(m) for m in self.history],
            num_parameters=self.num_parameters,
        )

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        training = self.config.training
        sums = {"loss": 0.0, "ce": 0.0, "kl": 0.0}
        rows_seen, tokens = 0, 0
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {epoch}/{training.epochs}",
            unit="step",
            file=sys.stderr,
            disable=not self.progress,
            leave=False,
        )
        started = time.perf_counter()
        evaluating = 0.0  # seconds spent on dev evaluations within the epoch
        for index, batch in enumerate(
            self.train_windows.epoch_batches(epoch, training.batch_size), start=1
        ):
            step_sums = self._train_step(batch)
            if not math.isfinite(step_sums["loss"]):
                bar.close()
                raise NonFiniteLossError(epoch, self.global_step, step_sums["loss"])
            for key in sums:
                sums[key] += step_sums[key] * len(batch)
            rows_seen += len(batch)
            tokens += batch.numel()
            bar.update(1)
            bar.set_postfix(loss=f"{step_sums['loss']:.3f}", refresh=False)
            if self.on_step is not None:
                self.on_step(self.global_step, step_sums)
            if (
                self.eval_every
                and self.global_step % self.eval_every == 0
                and index < self.steps_per_epoch  # the epoch's end has its own evaluation
            ):
                t0 = time.perf_counter()
                dev_loss = self.evaluate()  # eval mode, no grad, no RNG: training is unchanged
                if self.on_eval is not None:
                    self.on_eval(self.global_step, self.tokens_seen + tokens, dev_loss)
                evaluating += time.perf_counter() - t0
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started - evaluating
        bar.close()
        self.tokens_seen += tokens
        metrics = {
            "train_loss": sums["loss"] / rows_seen,
            "train_ce": sums["ce"] / rows_seen,
            "tokens_per_s": tokens / elapsed,
        }
        if self.teachers is not None:
            metrics["train_kl"] = sums["kl"] / rows_seen
        return metrics

    def _train_step(self, batch: torch.Tensor) -> dict[str, float]:
        """One optimizer step over a logical batch (B, L), accumulated over micro-batches."""
        training = self.config.training
        step_loss = torch.zeros((), device=self.device)
        step_ce = torch.zeros((), device=self.device)
        step_kl = torch.zeros((), device=self.device)
        for micro in batch.split(self.micro_batch_size):
            input_ids = micro.to(self.device, non_blocking=True)  # (b, L)
            weight = len(micro) / len(batch)  # windows have no padding: rows weigh equally
            parts = self._loss(input_ids)
            (parts.loss * weight).backward()
            step_loss += parts.loss.detach() * weight
            step_ce += parts.ce.detach() * weight
            if parts.kl is not None:
                step_kl += parts.kl.detach() * weight
        values = torch.stack([step_loss, step_ce, step_kl]).tolist()  # one device sync
        if math.isfinite(values[0]):
            if training.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.student.parameters(), training.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.global_step += 1
        else:
            self.global_step += 1  # the step the loss broke at, for the error message
        self.optimizer.zero_grad(set_to_none=True)
        return dict(zip(("loss", "ce", "kl"), values, strict=True))

    def _loss(self, input_ids: torch.Tensor) -> DistillationLoss:
        """The distillation loss of a micro-batch (b, L); chunked unless self.loss says reference."""
        training = self.config.training
        if self.loss == "reference":  # full (b, L, V) logits: the oracle, kept for benchmarks
            teacher_logits = self.teachers.logits(input_ids) if self.teachers else ()
            with self.autocast():
                student_logits = self.forward_student(input_ids=input_ids).logits  # (b, L, V)
            return distillation_loss(
                student_logits,
                input_ids,
                teacher_logits,
                alpha=training.alpha,
                temperature=training.temperature,
                ensemble=training.ensemble,
                kl_reduction=training.kl_reduction,
            )
        teachers = self.teachers.hidden_states(input_ids) if self.teachers else ()
        with self.autocast():  # the lm_head matmuls in bf16 on CUDA, as the Linear they replace
            hidden = self.forward_student_body(input_ids=input_ids).last_hidden_state  # (b, L, H)
            return chunked_distillation_loss(
                hidden,
                self.student.lm_head.weight,
                input_ids,
                teachers,
                alpha=training.alpha,
                temperature=training.temperature,
                ensemble=training.ensemble,
                kl_reduction=training.kl_reduction,
            )

    # --- evaluate ----------------------------------------------------------------------

    def evaluate(self, windows: np.ndarray | None = None) -> float:
        """Mean per-token CE of the student on dev (or the given) windows."""
        return mean_token_loss(
            self.student,
            self.dev_windows if windows is None else windows,
            batch_size=self.micro_batch_size,
            device=self.device,
            autocast=self.autocast(),
        )

    @torch.no_grad()
    def evaluate_distillation(self) -> float:
        """The training objective on dev: alpha CE + (1 - alpha) T^2 KL to the teachers, each
        window weighted equally (the reference's eval_loss, a mean over its eval batches)."""
        assert self.teachers is not None, "a run without teachers has only its dev CE"
        training = self.config.training
        was_training = self.student.training
        self.student.eval()
        total, windows = 0.0, 0
        for start in range(0, len(self.dev_windows), self.micro_batch_size):
            input_ids = torch.from_numpy(self.dev_windows[start : start + self.micro_batch_size])
            input_ids = input_ids.to(self.device)  # (b, L)
            teachers = self.teachers.hidden_states(input_ids)
            with self.autocast():
                hidden = self.student.model(input_ids=input_ids).last_hidden_state  # (b, L, H)
                loss = chunked_distillation_loss(
                    hidden,
                    self.student.lm_head.weight.detach(),  # no gradient is computed
                    input_ids,
                    teachers,
                    alpha=training.alpha,
                    temperature=training.temperature,
                    ensemble=training.ensemble,
                    kl_reduction=training.kl_reduction,
                ).loss
            total += loss.item() * len(input_ids)
            windows += len(input_ids)
        self.student.train(was_training)
        return total / windows

    def _selection_metric(self) -> str:
        """The dev figure checkpoint: best ranks epochs by (the dev CE without teachers)."""
        metric = self.config.training.checkpoint_metric
        return metric if all(metric in m for m in self.history) else "dev_loss"

    def _best_epoch(self) -> int:
        """The epoch with the lowest dev loss so far; the earliest on a tie (as HF Trainer)."""
        metric = self._selection_metric()
        best = min(self.history, key=lambda m: (m[metric], m["epoch"]))
        return int(best["epoch"])

    def _hand_on(self) -> dict[str, float]:
        """Put the handed-on model in the student; its epoch, dev loss and test loss."""
        chosen = self.history[-1]
        if self.config.training.checkpoint == "best":
            best_epoch = self._best_epoch()
            chosen = next(m for m in self.history if int(m["epoch"]) == best_epoch)
            if chosen is not self.history[-1]:
                best = load_model(self.best_dir, what="best checkpoint")
                self.student.load_state_dict(best.state_dict())
                log.info(
                    "handing on epoch %d (lowest %s)", chosen["epoch"], self._selection_metric()
                )
        self.handed_on = True
        return {
            "checkpoint_epoch": chosen["epoch"],
            "checkpoint_dev_loss": chosen["dev_loss"],
            "test_loss": self.evaluate(self.test_windows),
        }

    def _keep_best(self) -> None:
        staging = self.best_dir.with_name(f".{BEST_MODEL_DIR}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        self.student.save_pretrained(str(staging))
        shutil.rmtree(self.best_dir, ignore_errors=True)
        os.replace(staging, self.best_dir)

    def _restore_best(self, resume_from: Path) -> None:
        """A resumed checkpoint: best run keeps the best epoch's weights, wherever they are."""
        if self.config.training.checkpoint != "best" or not self.history or self.handed_on:
            return
        if self._best_epoch() == self.start_epoch - 1:
            self._keep_best()  # the resumed weights are the best
        elif (resume_from / BEST_MODEL_DIR).is_dir():
            shutil.rmtree(self.best_dir, ignore_errors=True)
            shutil.copytree(resume_from / BEST_MODEL_DIR, self.best_dir)
        else:
            raise TrainerError(
                f"resume_from {resume_from}: no {BEST_MODEL_DIR}/ for the best epoch "
                f"({self._best_epoch()}); resume with training.checkpoint: last"
            )

    # --- save --------------------------------------------------------------------------

    def save_checkpoint(self, epoch: int) -> Path:
        """output_dir/checkpoints/epoch_N: HF model + tokenizer + configs + train state."""
        root = Path(self.config.output_dir) / "checkpoints"
        target = root / f"epoch_{epoch}"
        staging = root / f".epoch_{epoch}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        self._save_model_files(staging)
        torch.save(self._train_state(epoch), staging / TRAIN_STATE_FILE)
        if not self.handed_on and self.best_dir.is_dir() and self._best_epoch() != epoch:
            shutil.copytree(self.best_dir, staging / BEST_MODEL_DIR)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        for older in root.glob("epoch_*"):
            if older != target:
                shutil.rmtree(older, ignore_errors=True)
        return target

    def save_final(self) -> Path:
        """output_dir/final: a plain HF checkpoint (model, tokenizer, recipe_config.json)."""
        target = Path(self.config.output_dir) / "final"
        staging = Path(self.config.output_dir) / ".final.partial"
        shutil.rmtree(staging, ignore_errors=True)
        self._save_model_files(staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        return target

    def _save_model_files(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.student.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))
        (directory / RECIPE_CONFIG_FILE).write_text(self.config.model_dump_json(indent=2))
        run_info = {
            "teacher_dirs": [str(d) for d in self.teacher_dirs],
            "num_parameters": self.num_parameters,
            "history": self.history,
        }
        (directory / RUN_INFO_FILE).write_text(json.dumps(run_info, indent=2))

    def _train_state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "step": self.global_step,
            "tokens_seen": self.tokens_seen,
            "history": self.history,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
        }

    # --- resume ------------------------------------------------------------------------

    @staticmethod
    def _read_train_state(resume_from: Path) -> dict[str, Any]:
        state_file = Path(resume_from) / TRAIN_STATE_FILE
        if not state_file.is_file():
            raise TrainerError(
                f"resume_from {resume_from}: no {TRAIN_STATE_FILE}; resume from an "
                "output_dir/checkpoints/epoch_N dir (final/ holds no training state)"
            )
        # Our own file: it holds numpy RNG state, which weights_only loading refuses.
        return torch.load(state_file, map_location="cpu", weights_only=False)

    def _restore_train_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch = int(state["epoch"]) + 1
        self.global_step = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        self.history = list(state["history"])
        # a run killed after its last epoch's checkpoint already handed its model on
        self.handed_on = self.start_epoch > self.config.training.epochs
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too
