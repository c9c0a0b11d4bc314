"""BabyLM's fine-tuning tasks: each one's official file layout, labels, metrics and recipe.

GLUE tasks read the TSVs of the GLUE distribution (`glue/<Task>/train.tsv`, `dev.tsv`;
MNLI's `dev_matched.tsv` / `dev_mismatched.tsv`), each with its own columns: CoLA has no
header (source, label, original judgement, sentence), the others are read by header name.
SuperGLUE tasks read its JSONL (`glue/<Task>/train.jsonl`, `val.jsonl`). MultiRC's nested
passages become one example per answer option, grouped by question; the MultiRC and WSC
pairs are worded as BabyLM's `finetune_classification.py` words them
(`Question: {q} Answer: {a}` against the paragraph; `Does "{span2}" refer to "{span1}"
in this passage?` against the text).

BabyLM's vocabulary-filtered copies (`glue_filtered/{task}.train.jsonl`, `{task}.valid.jsonl`
in evaluation-pipeline-2024; `{task}.train.json`, `{task}.validation.json`, MNLI's
`mnli.validation_matched.json` / `mnli.validation_mismatched.json` in evaluation-pipeline-2023)
are read where a task's official folder is absent: `task_files` finds them in
`<glue_dir>/glue_filtered/` or in `<glue_dir>` itself. Their rows are the Hugging Face dataset's
fields plus `label` (a class id), as BabyLM's `finetune_classification.py` reads them
(`_FILTERED_FIELDS`).

Recipes: BabyLM 2024's `finetune_model.sh` (babylm/evaluation-pipeline-2024, the copy in
JLTastet/evaluation-pipeline-2024) runs every task with lr 5e-5, batch 64, at most 10
epochs, patience 3, max_seq_length 128, seed 12, evaluating on dev each epoch and keeping
the best epoch (F1 for two-class tasks, else accuracy). BabyLlama-2's author ran the
per-task table of `finetune_model-2023_pars.py` in that fork (BabyLM 2023's per-task
values): `BABYLM_2023_RECIPES`.

Example::

    task = FINETUNE_TASKS["cola"]
    dev = read_task(Path("data/glue"), "cola", "dev")
    print(task.metrics, task.primary, len(dev))
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trainers.errors import TrainerError

__all__ = [
    "BABYLM_2023_RECIPES",
    "BABYLM_2024_RECIPE",
    "FINETUNE_TASKS",
    "FinetuneRecipe",
    "FinetuneTask",
    "TaskExample",
    "TaskFiles",
    "majority_baseline",
    "matthews_correlation",
    "multirc_scores",
    "not_above_majority",
    "read_task",
    "selection_score",
    "task_files",
    "task_metrics",
]

Split = Literal["train", "dev"]


@dataclass(frozen=True)
class TaskExample:
    """One input (a sentence or a pair) and its gold class id."""

    text_a: str
    text_b: str | None
    label: int
    question: str | None = None
    """MultiRC: the question this answer option belongs to (EM groups by it)."""


@dataclass(frozen=True)
class FinetuneRecipe:
    """How one task is fine-tuned: AdamW for at most `epochs`, best dev epoch kept."""

    epochs: int = 10
    lr: float = 5e-5
    batch_size: int = 64
    max_seq_length: int = 128
    patience: int | None = 3
    """Stop after this many epochs without a dev gain over 0.001; None: run every epoch."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.max_seq_length < 4 or self.lr <= 0:
            raise TrainerError(
                f"fine-tuning recipe {self}: epochs and batch_size must be >= 1, "
                "max_seq_length >= 4 and lr > 0"
            )
        if self.patience is not None and self.patience < 1:
            raise TrainerError(f"fine-tuning recipe: patience {self.patience} must be >= 1")


BABYLM_2024_RECIPE = FinetuneRecipe()
"""babylm/evaluation-pipeline-2024 finetune_model.sh: the same recipe for every task."""

BABYLM_2023_RECIPES: dict[str, FinetuneRecipe] = {
    "cola": FinetuneRecipe(epochs=3, lr=4e-5, batch_size=64, patience=10),
    "sst2": FinetuneRecipe(epochs=6, lr=5e-5, batch_size=64, patience=10),
    "mrpc": FinetuneRecipe(epochs=3, lr=3e-5, batch_size=64, patience=10),
    "qqp": FinetuneRecipe(epochs=10, lr=4e-5, batch_size=64, patience=10),
    "mnli": FinetuneRecipe(epochs=6, lr=5e-5, batch_size=64, patience=10),
    "qnli": FinetuneRecipe(epochs=6, lr=5e-5, batch_size=64, patience=10),
    "rte": FinetuneRecipe(epochs=6, lr=5e-5, batch_size=64, patience=10),
    "boolq": FinetuneRecipe(epochs=10, lr=3e-4, batch_size=16, patience=10),
    "multirc": FinetuneRecipe(epochs=7, lr=1e-4, batch_size=64, patience=10),
    "wsc": FinetuneRecipe(epochs=10, lr=5e-7, batch_size=1, patience=1000),
}
"""JLTastet/evaluation-pipeline-2024 finetune_model-2023_pars.py (BabyLlama-2's author), by
training task (mnli-mm is scored by the mnli fine-tune)."""


@dataclass(frozen=True)
class _Columns:
    """A TSV layout: columns by header name, or by position when the file has no header."""

    text_a: str | int
    text_b: str | int | None
    label: str | int
    labels: dict[str, int]
    width: int | None = None
    """Headerless files: the number of fields every row has."""


@dataclass(frozen=True)
class FinetuneTask:
    """One BabyLM fine-tuning task as babysweep reads, trains and scores it."""

    name: str
    benchmark: Literal["GLUE", "SuperGLUE"]
    folder: str
    files: dict[str, str]
    """split -> file name inside `glue/<folder>/`."""
    num_labels: int
    metrics: tuple[str, ...]
    """The official metrics, in the order a row lists them."""
    primary: str
    """The metric the GLUE average takes."""
    trains_as: str
    """The task whose fine-tune scores it (mnli-mm: mnli)."""
    columns: _Columns | None = None
    reader: Callable[[Path], list[TaskExample]] | None = field(default=None, repr=False)

    @property
    def format(self) -> str:
        return "TSV" if self.columns is not None else "JSONL"


@dataclass(frozen=True)
class TaskFiles:
    """Where one task's splits are read from under a glue folder, and in which layout."""

    layout: str
    """"TSV" or "JSONL" (the official distribution), or "BabyLM filtered JSONL"."""
    paths: dict[str, Path]
    """split -> file."""
    present: bool
    """The official task folder exists, or a filtered file of the task does."""


FILTERED_FOLDER = "glue_filtered"
"""BabyLM's evaluation_data/ (2024) and filter-data/ (2023) folder of the filtered tasks."""


def task_files(glue_dir: Path, task: str) -> TaskFiles:
    """The official `<glue_dir>/<Task>/` files when that folder exists, else BabyLM's filtered
    files (2024 names, then 2023's) in `<glue_dir>/glue_filtered/` or `<glue_dir>`."""
    spec = _task(task)
    official = Path(glue_dir) / spec.folder
    if not official.is_dir():
        for folder in (Path(glue_dir) / FILTERED_FOLDER, Path(glue_dir)):
            for names in _filtered_names(spec):
                paths = {split: folder / name for split, name in names.items()}
                if any(path.is_file() for path in paths.values()):
                    return TaskFiles(_FILTERED_LAYOUT, paths, present=True)
    paths = {split: official / name for split, name in spec.files.items()}
    return TaskFiles(spec.format, paths, present=official.is_dir())


def read_task(glue_dir: Path, task: str, split: str) -> list[TaskExample]:
    """Every example of one task's split, in file order; a bad layout names file and column."""
    spec = _task(task)
    if split not in spec.files:
        raise TrainerError(f"{task} split {split!r}: unknown; use one of {', '.join(spec.files)}")
    files = task_files(glue_dir, task)
    path = files.paths[split]
    if not path.is_file():
        needs = " and ".join(p.name for p in files.paths.values())
        source = (
            f"BabyLM's filtered {task}"
            if files.layout == _FILTERED_LAYOUT
            else f"{spec.benchmark} {spec.folder} as distributed"
        )
        raise TrainerError(
            f"data.glue: {path} is missing; {path.parent} needs {needs} ({source}; docs/DATA.md)"
        )
    if files.layout == _FILTERED_LAYOUT:
        return _read_filtered(path, spec)
    if spec.columns is not None:
        return _read_tsv(path, spec.columns, spec.folder)
    assert spec.reader is not None
    return spec.reader(path)


# --- metrics ---------------------------------------------------------------------------


def matthews_correlation(labels: Sequence[int], predictions: Sequence[int]) -> float:
    """Matthews correlation of two-class predictions (0.0 when a margin is constant)."""
    pairs = list(zip(labels, predictions, strict=True))
    tp = sum(g == 1 and p == 1 for g, p in pairs)
    tn = sum(g != 1 and p != 1 for g, p in pairs)
    fp = sum(g != 1 and p == 1 for g, p in pairs)
    fn = sum(g == 1 and p != 1 for g, p in pairs)
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


def _f1(labels: Sequence[int], predictions: Sequence[int]) -> float:
    pairs = list(zip(labels, predictions, strict=True))
    tp = sum(g == 1 and p == 1 for g, p in pairs)
    wrong = sum((g == 1) != (p == 1) for g, p in pairs)
    return 2 * tp / (2 * tp + wrong) if tp + wrong else 0.0


def multirc_scores(
    questions: Sequence[str], labels: Sequence[int], predictions: Sequence[int]
) -> dict[str, float]:
    """SuperGLUE MultiRC: f1a (F1 over every answer option), em (questions all right)."""
    right: dict[str, bool] = {}
    for question, gold, pred in zip(questions, labels, predictions, strict=True):
        right[question] = right.get(question, True) and gold == pred
    return {"f1a": _f1(labels, predictions), "em": sum(right.values()) / len(right)}


def task_metrics(
    task: str, examples: Sequence[TaskExample], predictions: Sequence[int]
) -> dict[str, float]:
    """The task's official metrics of `predictions` against the examples' gold labels."""
    spec = _task(task)
    labels = [e.label for e in examples]
    if len(labels) != len(predictions) or not labels:
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    accuracy = sum(g == p for g, p in zip(labels, predictions, strict=True)) / len(labels)
    available: dict[str, float] = {"accuracy": accuracy}
    if spec.num_labels == 2:
        available["f1"] = _f1(labels, predictions)
        available["mcc"] = matthews_correlation(labels, predictions)
    if spec.name == "multirc":
        questions = [e.question or "" for e in examples]
        available.update(multirc_scores(questions, labels, predictions))
    return {m: available[m] for m in spec.metrics}


def majority_baseline(task: str, examples: Sequence[TaskExample]) -> dict[str, float]:
    """The task's official metrics of always predicting the most frequent gold class of
    `examples` (ties: the lower class id), e.g. MRPC's always-"paraphrase"; CoLA's MCC is 0.

    Returned as {"majority_class": id, "majority_<metric>": value}, the keys a task's
    scores carry beside its own metrics (`glue_scores`, the store, the report)."""
    if not examples:
        raise ValueError(f"{task}: no examples to take a majority class of")
    counts: dict[int, int] = {}
    for e in examples:
        counts[e.label] = counts.get(e.label, 0) + 1
    majority = min(counts, key=lambda label: (-counts[label], label))
    scores = task_metrics(task, examples, [majority] * len(examples))
    return {"majority_class": float(majority), **{f"majority_{m}": v for m, v in scores.items()}}


def not_above_majority(scores: Mapping[str, Any]) -> list[str]:
    """The metrics of a task's scores that are not above its majority-class baseline
    (`majority_<metric>` beside them): empty when the fine-tune beats it on every metric."""
    return [
        metric
        for metric, value in scores.items()
        if f"majority_{metric}" in scores and not value > scores[f"majority_{metric}"] + 1e-9
    ]


def selection_score(
    task: str, examples: Sequence[TaskExample], predictions: Sequence[int]
) -> float:
    """What early stopping maximises: F1 of class 1 for two-class tasks, else accuracy (BabyLM's
    finetune_classification.py metric_for_best_model)."""
    labels = [e.label for e in examples]
    if _task(task).num_labels == 2:
        return _f1(labels, predictions)
    return sum(g == p for g, p in zip(labels, predictions, strict=True)) / len(labels)


# --- readers ---------------------------------------------------------------------------


def _read_tsv(path: Path, columns: _Columns, folder: str) -> list[TaskExample]:
    # Split on "\n" only: str.splitlines would also break at \x1c, \u2028 etc. inside text.
    try:
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except UnicodeDecodeError as exc:
        raise TrainerError(
            f"data.glue: {path}: byte {exc.start:,} is not UTF-8 text; save the file as UTF-8"
        ) from None
    if columns.width is None:
        header = lines[0].rstrip("\r").split("\t")
        wanted = [c for c in (columns.text_a, columns.text_b, columns.label) if c is not None]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise TrainerError(
                f"{path}, line 1: header lacks column {missing[0]!r} (has {header}); "
                f"use the GLUE {folder} TSV as distributed"
            )
        width, first, rows = len(header), 2, lines[1:]
        index = {c: header.index(c) for c in wanted if isinstance(c, str)}
    else:
        width, first, rows, index = columns.width, 1, lines, {}

    def at(fields: list[str], column: str | int) -> str:
        return fields[index[column] if isinstance(column, str) else column]

    examples = []
    for number, line in enumerate(rows, start=first):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != width:
            expected = "the header has" if columns.width is None else f"{folder} rows have"
            raise TrainerError(
                f"{path}, line {number}: {len(fields)} tab-separated fields, {expected} "
                f"{width}; fix or delete that row (a stray tab or a cut-off line), or use the "
                f"GLUE {folder} TSV as distributed"
            )
        label = at(fields, columns.label).strip()
        if label not in columns.labels:
            raise TrainerError(
                f"{path}, line {number}: unknown label {label!r} in column "
                f"{_column_name(columns.label)}; {folder} labels are "
                f"{', '.join(columns.labels)}: fix or delete that row"
            )
        text_b = at(fields, columns.text_b) if columns.text_b is not None else None
        examples.append(TaskExample(at(fields, columns.text_a), text_b, columns.labels[label]))
    return examples


def _column_name(column: str | int) -> str:
    return repr(column) if isinstance(column, str) else f"{column + 1} (of the headerless file)"


def _jsonl_rows(
    path: Path, fields: Sequence[str], source: str | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a JSONL file, each row checked for `fields` (a.b = nested);
    `source` names the layout a wrong row should be replaced by."""
    source = source or f"the SuperGLUE {path.parent.name} JSONL"
    rows = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TrainerError(
            f"data.glue: {path}: byte {exc.start:,} is not UTF-8 text; save the file as UTF-8"
        ) from None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TrainerError(f"{path}, line {number}: not JSON ({exc})") from None
        for name in fields:
            value: Any = row
            for part in name.split("."):
                if not isinstance(value, dict) or part not in value:
                    raise TrainerError(
                        f"{path}, line {number}: no field {name!r}; use {source} as distributed"
                    )
                value = value[part]
        rows.append((number, row))
    return rows


def _bool_label(path: Path, number: int, value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if value in (0, 1):
        return int(value)
    raise TrainerError(
        f"{path}, line {number}: label {value!r} in field 'label' is not true/false; "
        "fix or delete that row"
    )


def _read_boolq(path: Path) -> list[TaskExample]:
    return [
        TaskExample(row["question"], row["passage"], _bool_label(path, n, row["label"]))
        for n, row in _jsonl_rows(path, ("question", "passage", "label"))
    ]


def _read_wsc(path: Path) -> list[TaskExample]:
    fields = ("text", "target.span1_text", "target.span2_text", "label")
    examples = []
    for n, row in _jsonl_rows(path, fields):
        target = row["target"]
        prompt = f'Does "{target["span2_text"]}" refer to "{target["span1_text"]}" in this passage?'
        examples.append(TaskExample(prompt, row["text"], _bool_label(path, n, row["label"])))
    return examples


def _read_multirc(path: Path) -> list[TaskExample]:
    examples = []
    for n, row in _jsonl_rows(path, ("idx", "passage.text", "passage.questions")):
        for q_number, question in enumerate(row["passage"]["questions"]):
            if "question" not in question or "answers" not in question:
                raise TrainerError(
                    f"{path}, line {n}: question {q_number} lacks field 'question' or "
                    "'answers'; use the SuperGLUE MultiRC JSONL as distributed"
                )
            group = f"{row['idx']}-{question.get('idx', q_number)}"
            for answer in question["answers"]:
                if "text" not in answer or "label" not in answer:
                    raise TrainerError(
                        f"{path}, line {n}: an answer of question {q_number} lacks field "
                        "'text' or 'label'; use the SuperGLUE MultiRC JSONL as distributed"
                    )
                examples.append(
                    TaskExample(
                        f"Question: {question['question']} Answer: {answer['text']}",
                        row["passage"]["text"],
                        _bool_label(path, n, answer["label"]),
                        question=group,
                    )
                )
    return examples


_FILTERED_LAYOUT = "BabyLM filtered JSONL"

# The Hugging Face fields BabyLM's finetune_classification.py pairs for each task
# (babylm/evaluation-pipeline-2023: task_to_keys, and the column detection for local files:
# sentence1/sentence2, question1/question2, premise/hypothesis, question/passage,
# question/sentence, MultiRC's paragraph/question/answer, WSC's text/span1_text/span2_text).
_FILTERED_FIELDS: dict[str, tuple[str, ...]] = {
    "cola": ("sentence",),
    "sst2": ("sentence",),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "mnli": ("premise", "hypothesis"),
    "mnli-mm": ("premise", "hypothesis"),
    "qnli": ("question", "sentence"),
    "rte": ("sentence1", "sentence2"),
    "boolq": ("question", "passage"),
    "multirc": ("paragraph", "question", "answer"),
    "wsc": ("text", "span1_text", "span2_text"),
}


def _filtered_names(spec: FinetuneTask) -> tuple[dict[str, str], dict[str, str]]:
    """split -> file name: evaluation-pipeline-2024's finetune_model.sh, then 2023's."""
    dev_2023 = {"mnli": "mnli.validation_matched", "mnli-mm": "mnli.validation_mismatched"}
    return (
        {"train": f"{spec.trains_as}.train.jsonl", "dev": f"{spec.name}.valid.jsonl"},
        {
            "train": f"{spec.trains_as}.train.json",
            "dev": dev_2023.get(spec.name, f"{spec.name}.validation") + ".json",
        },
    )


def _read_filtered(path: Path, spec: FinetuneTask) -> list[TaskExample]:
    fields = _FILTERED_FIELDS[spec.name]
    source = f"BabyLM's filtered {spec.name} file (fields {', '.join(fields)}, label)"
    examples = []
    for n, row in _jsonl_rows(path, (*fields, "label"), source):
        for name in fields:
            if not isinstance(row[name], str):
                raise TrainerError(
                    f"{path}, line {n}: field {name!r} is {row[name]!r}, not text; "
                    "fix or delete that row"
                )
        text = [row[name] for name in fields]
        label = _class_id(path, n, row["label"], spec.num_labels)
        if spec.name == "multirc":  # paragraph, question, answer; EM groups by the question
            paragraph, question, answer = text
            examples.append(
                TaskExample(
                    f"Question: {question} Answer: {answer}",
                    paragraph,
                    label,
                    question=f"{paragraph}\n{question}",
                )
            )
        elif spec.name == "wsc":  # text, span1_text, span2_text
            prompt = f'Does "{text[2]}" refer to "{text[1]}" in this passage?'
            examples.append(TaskExample(prompt, text[0], label))
        else:
            examples.append(TaskExample(text[0], text[1] if len(text) > 1 else None, label))
    return examples


def _class_id(path: Path, number: int, value: Any, num_labels: int) -> int:
    """A Hugging Face class id (true/false for two classes, as SuperGLUE's JSONL has them)."""
    if isinstance(value, bool) and num_labels == 2:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < num_labels:
        return value
    raise TrainerError(
        f"{path}, line {number}: label {value!r} in field 'label' is not a class id "
        f"0-{num_labels - 1}; fix or delete that row"
    )


_BINARY = {"0": 0, "1": 1}
_NLI2 = {"entailment": 0, "not_entailment": 1}
_GLUE = {"train": "train.tsv", "dev": "dev.tsv"}
_SUPERGLUE = {"train": "train.jsonl", "dev": "val.jsonl"}


def _glue(
    name: str, folder: str, columns: _Columns, metrics: tuple[str, ...], **kw: Any
) -> FinetuneTask:
    labels = len(set(columns.labels.values()))
    return FinetuneTask(
        name,
        "GLUE",
        folder,
        kw.pop("files", _GLUE),
        labels,
        metrics,
        metrics[0],
        kw.pop("trains_as", name),
        columns=columns,
    )


def _superglue(
    name: str,
    folder: str,
    reader: Callable[[Path], list[TaskExample]],
    metrics: tuple[str, ...],
) -> FinetuneTask:
    return FinetuneTask(
        name, "SuperGLUE", folder, _SUPERGLUE, 2, metrics, metrics[0], name, reader=reader
    )


_MNLI = _Columns(
    "sentence1", "sentence2", "gold_label", {"entailment": 0, "neutral": 1, "contradiction": 2}
)

FINETUNE_TASKS: dict[str, FinetuneTask] = {
    t.name: t
    for t in (
        _glue("cola", "CoLA", _Columns(3, None, 1, _BINARY, width=4), ("mcc",)),
        _glue("sst2", "SST-2", _Columns("sentence", None, "label", _BINARY), ("accuracy",)),
        _glue(
            "mrpc",
            "MRPC",
            _Columns("#1 String", "#2 String", "Quality", _BINARY),
            ("f1", "accuracy"),
        ),
        _glue(
            "qqp",
            "QQP",
            _Columns("question1", "question2", "is_duplicate", _BINARY),
            ("f1", "accuracy"),
        ),
        _glue(
            "mnli",
            "MNLI",
            _MNLI,
            ("accuracy",),
            files={"train": "train.tsv", "dev": "dev_matched.tsv"},
        ),
        _glue(
            "mnli-mm",
            "MNLI",
            _MNLI,
            ("accuracy",),
            files={"train": "train.tsv", "dev": "dev_mismatched.tsv"},
            trains_as="mnli",
        ),
        _glue("qnli", "QNLI", _Columns("question", "sentence", "label", _NLI2), ("accuracy",)),
        _glue("rte", "RTE", _Columns("sentence1", "sentence2", "label", _NLI2), ("accuracy",)),
        _superglue("boolq", "BoolQ", _read_boolq, ("accuracy",)),
        _superglue("multirc", "MultiRC", _read_multirc, ("f1a", "em")),
        _superglue("wsc", "WSC", _read_wsc, ("accuracy",)),
    )
}
"""BabyLM's eleven fine-tuning rows, in BabyLM's order (GLUE, then SuperGLUE)."""


def _task(task: str) -> FinetuneTask:
    if task not in FINETUNE_TASKS:
        raise TrainerError(f"task {task!r}: unknown; use one of {', '.join(FINETUNE_TASKS)}")
    return FINETUNE_TASKS[task]
