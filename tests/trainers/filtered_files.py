"""BabyLM's vocabulary-filtered task files, written by the tests from the same examples as
tests/trainers/task_files.py: one JSON object a line, the Hugging Face fields plus `label`
(a class id), named as evaluation-pipeline-2024 (`{task}.train.jsonl`, `{task}.valid.jsonl`)
or evaluation-pipeline-2023 (`{task}.train.json`, `{task}.validation.json`, MNLI's
`mnli.validation_matched.json` / `mnli.validation_mismatched.json`) names them.
"""

from __future__ import annotations

from pathlib import Path

from tests.trainers.task_files import (
    BOOLQ,
    COLA,
    MNLI,
    MULTIRC,
    QNLI,
    QQP,
    SST2,
    WSC,
    write_jsonl,
)

_MNLI_IDS = {"entailment": 0, "neutral": 1, "contradiction": 2}
_NLI2_IDS = {"entailment": 0, "not_entailment": 1}


def filtered_rows() -> dict[str, list[dict]]:
    """task -> rows (MNLI: train; its matched dev is rows 0-3, mismatched rows 2-5)."""
    return {
        "cola": [{"sentence": s, "label": y, "idx": i} for i, (_, y, _, s) in enumerate(COLA)],
        "sst2": [{"sentence": s, "label": y, "idx": i} for i, (s, y) in enumerate(SST2)],
        "qqp": [{"question1": a, "question2": b, "label": y} for a, b, y in QQP],
        "mnli": [{"premise": a, "hypothesis": b, "label": _MNLI_IDS[y]} for a, b, y, _ in MNLI],
        "qnli": [{"question": q, "sentence": s, "label": _NLI2_IDS[y]} for q, s, y in QNLI],
        "boolq": [{"question": q, "passage": p, "label": int(y)} for q, p, y in BOOLQ],
        "multirc": [
            {"paragraph": paragraph, "question": q, "answer": a, "label": y}
            for paragraph, questions in MULTIRC
            for q, answers in questions
            for a, y in answers
        ],
        "wsc": [
            {"text": t, "span1_text": s1, "span2_text": s2, "label": int(y)} for t, s1, s2, y in WSC
        ],
        # small stand-ins: the tests read the real MRPC and RTE in their official layout
        "mrpc": [{"sentence1": a, "sentence2": b, "label": y} for a, b, y in QQP],
        "rte": [{"sentence1": s, "sentence2": q, "label": _NLI2_IDS[y]} for q, s, y in QNLI],
    }


def write_filtered_tasks(folder: Path, *, pipeline: int = 2024) -> None:
    """Every task's train and dev file in `folder`, named as BabyLM `pipeline` names them."""
    for task, rows in filtered_rows().items():
        if task == "mnli":
            continue
        train, dev = (
            (f"{task}.train.jsonl", f"{task}.valid.jsonl")
            if pipeline == 2024
            else (f"{task}.train.json", f"{task}.validation.json")
        )
        write_jsonl(folder / train, rows)
        write_jsonl(folder / dev, rows)
    mnli = filtered_rows()["mnli"]
    suffix = ".jsonl" if pipeline == 2024 else ".json"
    write_jsonl(folder / f"mnli.train{suffix}", mnli)
    if pipeline == 2024:
        write_jsonl(folder / "mnli.valid.jsonl", mnli[:4])
        write_jsonl(folder / "mnli-mm.valid.jsonl", mnli[2:])
    else:
        write_jsonl(folder / "mnli.validation_matched.json", mnli[:4])
        write_jsonl(folder / "mnli.validation_mismatched.json", mnli[2:])
