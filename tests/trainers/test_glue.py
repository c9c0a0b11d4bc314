"""trainers.evaluate.glue: MRPC/RTE fine-tuning of a real tiny checkpoint on the real GLUE files.

The checkpoint is a ~40k-parameter LLaMA trained for one short epoch on a slice of
babylm-mini; it fine-tunes on 64 MRPC train pairs and is scored on 64 dev pairs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainers.errors import TrainerError
from trainers.evaluate.glue import (
    GlueExample,
    classification_metrics,
    glue_scores,
    read_glue_task,
)

torch.set_num_threads(1)

MRPC_SLICE = dict(max_train_examples=64, max_eval_examples=64, batch_size=16, lr=1e-3)


@pytest.fixture(scope="module")
def glue_dir(data_root: Path) -> Path:
    return data_root / "glue"


@pytest.fixture(scope="module")
def mrpc_run(tiny_checkpoint: Path, glue_dir: Path) -> dict:
    return glue_scores(
        tiny_checkpoint, glue_dir, tasks=("mrpc",), return_predictions=True, **MRPC_SLICE
    )["mrpc"]


def test_mrpc_scores_match_a_count_of_the_predictions(mrpc_run: dict, glue_dir: Path):
    gold = [e.label for e in read_glue_task(glue_dir, "mrpc", "dev")[:64]]
    assert mrpc_run["labels"] == gold
    predictions = mrpc_run["predictions"]
    assert len(predictions) == 64 and set(predictions) <= {0, 1}
    assert mrpc_run["n"] == 64 and mrpc_run["group"] is None

    correct = sum(p == g for p, g in zip(predictions, gold, strict=True))
    assert mrpc_run["accuracy"] == pytest.approx(correct / 64)
    # F1 of the paraphrase class, from precision and recall rather than the 2TP formula.
    hits = sum(p == g == 1 for p, g in zip(predictions, gold, strict=True))
    precision = hits / predictions.count(1) if predictions.count(1) else 0.0
    recall = hits / gold.count(1)
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    assert mrpc_run["f1"] == pytest.approx(f1)
    # Beside them, always-"paraphrase" on the same 64 dev pairs, counted here.
    assert gold.count(1) > gold.count(0) and mrpc_run["majority_class"] == 1
    assert mrpc_run["majority_accuracy"] == pytest.approx(gold.count(1) / 64)
    assert mrpc_run["majority_f1"] == pytest.approx(2 * gold.count(1) / (gold.count(1) + 64))


def test_same_seed_gives_the_same_scores(mrpc_run: dict, tiny_checkpoint: Path, glue_dir: Path):
    again = glue_scores(
        tiny_checkpoint, glue_dir, tasks=("mrpc",), return_predictions=True, **MRPC_SLICE
    )["mrpc"]
    assert again == mrpc_run


def test_default_result_has_the_documented_keys(tiny_checkpoint: Path, glue_dir: Path):
    scores = glue_scores(
        tiny_checkpoint, glue_dir, max_train_examples=16, max_eval_examples=8, batch_size=8
    )
    assert set(scores) == {"mrpc", "rte"}
    majority = {"majority_class"}
    assert (
        set(scores["mrpc"])
        == {"group", "n", "accuracy", "f1", "majority_accuracy", "majority_f1"} | majority
    )
    assert set(scores["rte"]) == {"group", "n", "accuracy", "majority_accuracy"} | majority
    assert scores["rte"]["n"] == 8 and 0.0 <= scores["rte"]["accuracy"] <= 1.0


def test_rte_word_labels_parse(glue_dir: Path):
    dev = read_glue_task(glue_dir, "rte", "dev")
    assert len(dev) == 139
    raw = (glue_dir / "RTE" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1]
    text_a, text_b, word = raw.split("\t")[1:]
    assert dev[0] == GlueExample(text_a, text_b, {"entailment": 0, "not_entailment": 1}[word])
    assert sorted({e.label for e in dev}) == [0, 1]
    assert sum(e.label == 0 for e in dev) == 70  # entailment


def test_mrpc_bom_is_stripped(glue_dir: Path):
    assert (glue_dir / "MRPC" / "dev.tsv").read_bytes().startswith(b"\xef\xbb\xbf")
    dev = read_glue_task(glue_dir, "mrpc", "dev")
    assert len(dev) == 408 and sum(e.label for e in dev) == 279
    assert dev[0].label == 1 and dev[0].text_a.startswith("He said the foodservice pie")
    assert dev[0].text_b.startswith('" The foodservice pie business')


def write_task(glue_dir: Path, folder: str, header: str, rows: list[str]) -> None:
    (glue_dir / folder).mkdir(parents=True, exist_ok=True)
    text = "\n".join([header, *rows]) + "\n"
    for split in ("train", "dev"):
        (glue_dir / folder / f"{split}.tsv").write_text(text, encoding="utf-8")


RTE_HEADER = "index\tsentence1\tsentence2\tlabel"


@pytest.mark.parametrize(
    ("bad_row", "says"),
    [
        ("3\tA cat sat.\tentailment", "3 tab-separated fields, the header has 4"),
        ("3\tA cat sat.\tA cat is sitting.\tmaybe", "unknown label 'maybe'"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path: Path, bad_row: str, says: str):
    good = [
        "1\tA dog ran.\tAn animal ran.\tentailment",
        "2\tIt rained.\tIt was dry.\tnot_entailment",
    ]
    write_task(tmp_path, "RTE", RTE_HEADER, [*good, bad_row])
    with pytest.raises(TrainerError) as err:
        read_glue_task(tmp_path, "rte", "dev")
    message = str(err.value)
    assert f"{tmp_path / 'RTE' / 'dev.tsv'}, line 4:" in message  # header is line 1
    assert says in message and "fix or delete that row" in message


def test_bad_mrpc_label_is_caught_after_the_bom(tmp_path: Path):
    header = "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    write_task(tmp_path, "MRPC", header, ["1\t1\t2\tA.\tB.", "yes\t3\t4\tC.\tD."])
    with pytest.raises(TrainerError, match=r"train\.tsv, line 3: unknown label 'yes'.*0, 1"):
        read_glue_task(tmp_path, "mrpc", "train")


def test_missing_task_dir_and_file_name_the_path(tmp_path: Path, tiny_checkpoint: Path):
    with pytest.raises(TrainerError, match=str(tmp_path / "MRPC")):
        glue_scores(tiny_checkpoint, tmp_path, tasks=("mrpc",))
    write_task(tmp_path, "RTE", RTE_HEADER, ["1\tA.\tB.\tentailment"])
    (tmp_path / "RTE" / "train.tsv").unlink()
    with pytest.raises(TrainerError, match=str(tmp_path / "RTE" / "train.tsv")):
        read_glue_task(tmp_path, "rte", "train")


def test_unknown_task_lists_the_known_ones(tmp_path: Path, glue_dir: Path):
    with pytest.raises(TrainerError, match=r"'wnli'.*cola, sst2, mrpc.*multirc, wsc"):
        glue_scores(tmp_path / "no_model", glue_dir, tasks=("mrpc", "wnli"))
    with pytest.raises(TrainerError, match=r"mrpc, qqp"):
        read_glue_task(glue_dir, "MNLI", "dev")


def test_classification_metrics_by_hand():
    # gold 1 1 1 0 0 / pred 1 0 1 1 0: TP 2, FP 1, FN 1, TN 1
    metrics = classification_metrics([1, 1, 1, 0, 0], [1, 0, 1, 1, 0])
    assert metrics == {"n": 5, "accuracy": pytest.approx(3 / 5), "f1": pytest.approx(2 / 3)}
    assert classification_metrics([0, 0], [0, 0])["f1"] == 0.0
