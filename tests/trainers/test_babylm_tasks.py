"""BabyLM's fine-tuning tasks (trainers.evaluate.tasks): official layouts, official metrics.

Every task but MRPC and RTE is read from small files the tests write in the official
format (tests/trainers/task_files.py); MRPC and RTE are the real files in the data root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from tests.trainers import task_files
from trainers.errors import TrainerError
from trainers.evaluate.tasks import (
    BABYLM_2023_RECIPES,
    FINETUNE_TASKS,
    majority_baseline,
    matthews_correlation,
    multirc_scores,
    not_above_majority,
    read_task,
    task_metrics,
)

REPO = Path(__file__).resolve().parents[2]


def test_every_babylm_task_reads_its_official_layout(glue: Path):
    assert list(FINETUNE_TASKS) == [
        "cola", "sst2", "mrpc", "qqp", "mnli", "mnli-mm", "qnli", "rte", "boolq", "multirc", "wsc",
    ]  # fmt: skip
    cola = read_task(glue, "cola", "dev")
    assert [(e.text_a, e.text_b, e.label) for e in cola] == [
        (s, None, y) for _, y, _, s in task_files.COLA
    ]
    assert [e.label for e in read_task(glue, "sst2", "train")] == [1, 0, 1, 0]
    mnli = read_task(glue, "mnli", "dev")  # dev_matched: rows 0-3
    assert [e.label for e in mnli] == [0, 2, 1, 0]  # entailment, contradiction, neutral
    assert mnli[0].text_a == "A man is playing a guitar." and mnli[0].text_b == "A man plays music."
    assert read_task(glue, "mnli-mm", "dev")[0].text_b == "The dog is brown."
    assert [e.label for e in read_task(glue, "qnli", "dev")] == [0, 1, 0, 1]
    assert [e.label for e in read_task(glue, "qqp", "dev")] == [1, 0, 1, 0]
    boolq = read_task(glue, "boolq", "dev")
    assert boolq[0].text_a == "is the sky blue" and [e.label for e in boolq] == [1, 0, 1, 0]
    wsc = read_task(glue, "wsc", "dev")
    assert wsc[0].text_a == 'Does "it" refer to "trophy" in this passage?'
    assert wsc[0].text_b.startswith("The trophy") and [e.label for e in wsc] == [1, 0, 1, 0]
    multirc = read_task(glue, "multirc", "dev")
    assert len(multirc) == 7  # one example per answer option
    assert multirc[0].text_a == "Question: What does Sam have? Answer: A red ball"
    assert [e.question for e in multirc] == ["0-0"] * 3 + ["0-1"] * 2 + ["1-0"] * 2
    assert len(read_task(glue, "mrpc", "dev")) == 408  # the real file
    assert len(read_task(glue, "rte", "dev")) == 139


def test_babylm_2023_recipe_table_matches_the_reference_fork():
    # JLTastet/evaluation-pipeline-2024 finetune_model-2023_pars.py
    assert BABYLM_2023_RECIPES["cola"].lr == 4e-5 and BABYLM_2023_RECIPES["cola"].epochs == 3
    assert BABYLM_2023_RECIPES["boolq"].batch_size == 16 and BABYLM_2023_RECIPES["boolq"].lr == 3e-4
    assert BABYLM_2023_RECIPES["wsc"].batch_size == 1 and BABYLM_2023_RECIPES["wsc"].lr == 5e-7
    assert set(BABYLM_2023_RECIPES) == {t.trains_as for t in FINETUNE_TASKS.values()}


GOLD = [1, 1, 0, 0, 1, 0, 1, 1, 0, 0]
PRED = [1, 0, 0, 1, 1, 0, 1, 0, 0, 1]


@pytest.mark.parametrize(
    ("gold", "pred"),
    [(GOLD, PRED), ([1, 1, 0, 0], [1, 1, 1, 1]), ([0, 1, 0, 1, 1], [1, 0, 1, 0, 0])],
)
def test_two_class_metrics_equal_sklearn(gold: list[int], pred: list[int]):
    examples = [task_files_example(y) for y in gold]
    assert task_metrics("cola", examples, pred) == {
        "mcc": pytest.approx(matthews_corrcoef(gold, pred))
    }
    assert matthews_correlation(gold, pred) == pytest.approx(matthews_corrcoef(gold, pred))
    for task in ("mrpc", "qqp"):
        assert task_metrics(task, examples, pred) == {
            "f1": pytest.approx(f1_score(gold, pred)),
            "accuracy": pytest.approx(accuracy_score(gold, pred)),
        }
    for task in ("sst2", "qnli", "rte", "boolq", "wsc"):
        assert task_metrics(task, examples, pred) == {
            "accuracy": pytest.approx(accuracy_score(gold, pred))
        }


def test_mnli_accuracy_over_three_classes():
    gold, pred = [0, 1, 2, 2, 1, 0], [0, 2, 2, 1, 1, 0]
    examples = [task_files_example(y) for y in gold]
    assert task_metrics("mnli", examples, pred) == {"accuracy": pytest.approx(4 / 6)}
    assert task_metrics("mnli-mm", examples, pred) == {"accuracy": pytest.approx(4 / 6)}


def test_multirc_f1a_and_exact_match_grouped_by_question(glue: Path):
    dev = read_task(glue, "multirc", "dev")
    # gold: q0-0 [1 1 0], q0-1 [1 0], q1-0 [1 0]; one answer wrong in q0-0 only
    pred = [1, 0, 0, 1, 0, 1, 0]
    scores = task_metrics("multirc", dev, pred)
    gold = [e.label for e in dev]
    assert gold == [1, 1, 0, 1, 0, 1, 0]
    assert scores["f1a"] == pytest.approx(f1_score(gold, pred))  # over all answer options
    assert scores["em"] == pytest.approx(2 / 3)  # q0-1 and q1-0 all right, q0-0 not
    # The same answers scored without their questions would give 6/7 per option, not 2/3.
    assert multirc_scores(["a", "a", "b"], [1, 0, 1], [1, 1, 1])["em"] == pytest.approx(1 / 2)


def task_files_example(label: int):
    from trainers.evaluate.tasks import TaskExample

    return TaskExample("text", None, label)


@pytest.mark.parametrize(
    ("task", "path", "content", "names"),
    [
        ("cola", "CoLA/dev.tsv", "gj04\t1\tA fine sentence.\n", ["3 tab-separated fields"]),
        ("cola", "CoLA/dev.tsv", "gj04\tyes\t\tA sentence.\n", ["column 2", "'yes'"]),
        ("sst2", "SST-2/dev.tsv", "text\tlabel\nnice\t1\n", ["column 'sentence'"]),
        ("qqp", "QQP/dev.tsv", "id\tq1\tq2\tlabel\n1\ta\tb\t0\n", ["column 'question1'"]),
        ("mnli", "MNLI/dev_matched.tsv", "sentence1\tsentence2\tlabel\na\tb\tneutral\n",
         ["column 'gold_label'"]),
        ("qnli", "QNLI/dev.tsv", "index\tquestion\tsentence\tlabel\n1\ta\tb\tyes\n",
         ["column 'label'", "'yes'"]),
        ("boolq", "BoolQ/val.jsonl", '{"question": "q", "text": "p", "label": true}\n',
         ["field 'passage'"]),
        ("multirc", "MultiRC/val.jsonl", '{"idx": 0, "paragraph": "p"}\n', ["field 'passage.text'"]),
        ("wsc", "WSC/val.jsonl", '{"text": "t", "span1_text": "a", "label": true}\n',
         ["field 'target.span1_text'"]),
    ],
)  # fmt: skip
def test_wrong_layout_names_the_file_and_the_column(
    tmp_path: Path, task: str, path: str, content: str, names: list[str]
):
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(content, encoding="utf-8")
    with pytest.raises(TrainerError) as err:
        read_task(tmp_path, task, "dev")
    message = str(err.value)
    assert str(tmp_path / path) in message
    for name in names:
        assert name in message


def test_cli_exits_2_on_a_wrong_layout_and_writes_nothing(tmp_path: Path, data_root: Path):
    root = tmp_path / "root"
    (root / "glue" / "CoLA").mkdir(parents=True)
    for split in ("train", "dev"):  # a CoLA file with a header and three columns
        (root / "glue" / "CoLA" / f"{split}.tsv").write_text("label\tsentence\n1\tA cat.\n")
    out = tmp_path / "scores.json"
    done = subprocess.run(
        [sys.executable, "-m", "trainers.evaluate", "--checkpoint", str(tmp_path / "none"),
         "--data-root", str(root), "--glue", "cola", "--json", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    # The layout is checked before the checkpoint is loaded, so the message is the file's.
    assert str(root / "glue" / "CoLA" / "train.tsv") in done.stderr
    assert "tab-separated fields" in done.stderr
    assert not out.exists()


def test_early_stopping_keeps_the_best_dev_epoch(tiny_checkpoint: Path, glue: Path):
    from trainers.evaluate.glue import finetune_and_predict
    from trainers.evaluate.tasks import FinetuneRecipe, selection_score

    train, dev = read_task(glue, "cola", "train"), read_task(glue, "cola", "dev")
    # An lr this small changes no prediction: no dev gain, so patience 2 stops after epoch 3.
    frozen = FinetuneRecipe(epochs=6, lr=1e-12, batch_size=4, patience=2)
    run = finetune_and_predict(tiny_checkpoint, train, {"cola": dev}, task="cola", recipe=frozen)
    assert (run.best_epoch, run.epochs_run) == (1, 3)
    assert len(set(run.dev_scores)) == 1
    # Without patience every epoch runs; the kept predictions are the best epoch's.
    free = FinetuneRecipe(epochs=4, lr=1e-2, batch_size=2, patience=None)
    run = finetune_and_predict(tiny_checkpoint, train, {"cola": dev}, task="cola", recipe=free)
    assert run.epochs_run == 4
    best = max(run.dev_scores)
    assert (
        run.dev_scores.index(best) + 1 == run.best_epoch
        or best - run.dev_scores[run.best_epoch - 1] <= 0.001
    )
    assert (
        selection_score("cola", dev, run.predictions["cola"]) == run.dev_scores[run.best_epoch - 1]
    )


def _dev_labels(tsv: Path, column: str) -> list[int]:
    """A task's gold labels read with the csv module, not trainers' reader."""
    import csv

    with tsv.open(encoding="utf-8-sig", newline="") as f:
        return [int(row[column]) for row in csv.DictReader(f, delimiter="\t", quoting=3)]


@pytest.mark.parametrize(("first", "accuracy", "f1"), [(100, 0.690, 0.817), (None, 0.684, 0.812)])
def test_mrpc_majority_baseline_is_always_paraphrase(
    glue: Path, first: int | None, accuracy: float, f1: float
):
    gold = _dev_labels(glue / "MRPC" / "dev.tsv", "Quality")[:first]
    majority = max((0, 1), key=gold.count)
    assert majority == 1  # "paraphrase"
    always = [majority] * len(gold)
    baseline = majority_baseline("mrpc", read_task(glue, "mrpc", "dev")[:first])
    assert baseline == {
        "majority_class": 1.0,
        "majority_f1": pytest.approx(f1_score(gold, always)),
        "majority_accuracy": pytest.approx(accuracy_score(gold, always)),
    }
    # The demo's first 100 dev pairs, and the whole dev set (279 of 408 paraphrases).
    assert round(baseline["majority_accuracy"], 3) == accuracy
    assert round(baseline["majority_f1"], 3) == f1


def test_majority_baseline_of_cola_multirc_and_rte(glue: Path):
    cola = majority_baseline("cola", read_task(glue, "cola", "dev"))
    assert cola == {"majority_class": 0.0, "majority_mcc": 0.0}  # a 3-3 tie: the lower class
    multirc = read_task(glue, "multirc", "dev")
    gold = [e.label for e in multirc]  # 4 right answers of 7 options, no question all right
    assert majority_baseline("multirc", multirc) == {
        "majority_class": 1.0,
        "majority_f1a": pytest.approx(f1_score(gold, [1] * 7)),
        "majority_em": 0.0,
    }
    rte = _dev_labels_words(glue / "RTE" / "dev.tsv")
    share = max(rte.count("entailment"), rte.count("not_entailment")) / len(rte)
    assert majority_baseline("rte", read_task(glue, "rte", "dev"))["majority_accuracy"] == (
        pytest.approx(share)
    )


def _dev_labels_words(tsv: Path) -> list[str]:
    lines = tsv.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[-1] for line in lines if line.strip()]


def test_not_above_majority_names_each_metric_at_or_below_it():
    demo = {"f1": 0.8166, "accuracy": 0.69, "majority_f1": 0.8166, "majority_accuracy": 0.69}
    assert not_above_majority(demo) == ["f1", "accuracy"]
    always_duplicate = {"f1": 0.53, "accuracy": 0.37, "majority_f1": 0.0, "majority_accuracy": 0.63}
    assert not_above_majority(always_duplicate) == ["accuracy"]
    assert not_above_majority({"mcc": 0.12, "majority_mcc": 0.0, "majority_class": 0.0}) == []
