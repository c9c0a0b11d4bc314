"""Small files in each BabyLM task's official format, written by the tests (never the real data).

GLUE TSVs keep their distributed column layouts (CoLA headerless; MNLI's many columns and
its matched/mismatched dev files); SuperGLUE tasks are JSONL (MultiRC nested by passage
and question). The zero-shot suites are BabyLM's `evaluation_data` JSONL files.
"""

from __future__ import annotations

import json
from pathlib import Path

COLA = [
    ("gj04", 1, "", "The sailors rode the breeze clear of the rocks."),
    ("gj04", 0, "*", "The more does Bill smoke, the more Susan hates him."),
    ("gj04", 1, "", "Fred watered the plants flat."),
    ("gj04", 0, "*", "Bill is the most unlikely to arrive."),
    ("cj99", 1, "", "The dog barked."),
    ("cj99", 0, "*", "Dog the barked."),
]
SST2 = [("a charming and funny film", 1), ("dull and lifeless", 0), ("a gem", 1), ("bad", 0)]
QQP = [
    ("How do I learn Python?", "What is the best way to learn Python?", 1),
    ("Why is the sky blue?", "How tall is Everest?", 0),
    ("What is love?", "How do you define love?", 1),
    ("Where is Paris?", "Why do cats purr?", 0),
]
MNLI = [
    ("A man is playing a guitar.", "A man plays music.", "entailment", "fiction"),
    ("A man is playing a guitar.", "Nobody is playing.", "contradiction", "fiction"),
    ("A woman walks a dog.", "The dog is brown.", "neutral", "travel"),
    ("Kids run in a park.", "Children are outside.", "entailment", "travel"),
    ("Kids run in a park.", "The kids are asleep.", "contradiction", "slate"),
    ("A chef cooks pasta.", "The pasta is for dinner.", "neutral", "slate"),
]
QNLI = [
    ("Where do pandas live?", "Pandas live in China.", "entailment"),
    ("Where do pandas live?", "Pandas eat bamboo.", "not_entailment"),
    ("Who wrote Hamlet?", "Hamlet was written by Shakespeare.", "entailment"),
    ("Who wrote Hamlet?", "Hamlet is a play.", "not_entailment"),
]
BOOLQ = [
    ("is the sky blue", "The sky appears blue by day.", True),
    ("is fire cold", "Fire is hot.", False),
    ("do cats purr", "Cats purr when content.", True),
    ("can fish fly", "Most fish swim.", False),
]
# passage idx -> questions: (question, [(answer, label)])
MULTIRC = [
    (
        "Sam has a red ball and a blue kite. He plays in the park.",
        [
            ("What does Sam have?", [("A red ball", 1), ("A blue kite", 1), ("A dog", 0)]),
            ("Where does Sam play?", [("In the park", 1), ("At school", 0)]),
        ],
    ),
    (
        "Ann reads books every night before bed.",
        [("When does Ann read?", [("Every night", 1), ("In the morning", 0)])],
    ),
]
WSC = [
    ("The trophy did not fit in the suitcase because it was too big.", "trophy", "it", True),
    ("The trophy did not fit in the suitcase because it was too small.", "trophy", "it", False),
    ("Joan thanked Susan for the help she had given.", "Susan", "she", True),
    ("Joan thanked Susan for the help she had received.", "Susan", "she", False),
]

BLIMP_FILTERED = {
    "anaphor_gender_agreement": [
        ("Katherine can't help herself.", "Katherine can't help himself.")
    ],
    "determiner_noun_agreement_1": [
        ("Raymond is selling this sketch.", "Raymond is selling this sketches."),
        ("The boy saw these cats.", "The boy saw these cat."),
    ],
}
SUPPLEMENT = {
    "qa_congruence_easy": [
        ("A: What did you eat?\nB: A pizza.", "A: What did you eat?\nB: At noon."),
        ("A: Who did you see?\nB: My friend.", "A: Who did you see?\nB: Yesterday."),
    ],
    "turn_taking": [("A: Did you go?\nB: Yes, I did.", "A: Did you go?\nB: Yes, you did.")],
}
EWOK = {
    "physical-relations": [
        ("The cup is on the table.", "The cup is above the table.", "The cup is below the table."),
        ("The cat is under the bed.", "The cat is below the bed.", "The cat is above the bed."),
    ],
    "social-properties": [("Ann is kind.", "Ann helps people.", "Ann hurts people.")],
}


def write_tsv(path: Path, header: list[str] | None, rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([("\t".join(header))] if header else []) + ["\t".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


MNLI_HEADER = [
    "index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
    "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label",
]  # fmt: skip


def write_glue_tasks(glue: Path) -> None:
    """Every task but MRPC and RTE (the tests link the real ones) in its official layout."""
    for split in ("train", "dev"):
        write_tsv(glue / "CoLA" / f"{split}.tsv", None, [list(r) for r in COLA])
        write_tsv(glue / "SST-2" / f"{split}.tsv", ["sentence", "label"], [list(r) for r in SST2])
        write_tsv(
            glue / "QQP" / f"{split}.tsv",
            ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
            [[i, 2 * i, 2 * i + 1, a, b, y] for i, (a, b, y) in enumerate(QQP)],
        )
        write_tsv(
            glue / "QNLI" / f"{split}.tsv",
            ["index", "question", "sentence", "label"],
            [[i, q, s, y] for i, (q, s, y) in enumerate(QNLI)],
        )
        write_jsonl(
            glue / "BoolQ" / ("train.jsonl" if split == "train" else "val.jsonl"),
            [
                {"question": q, "passage": p, "idx": i, "label": y}
                for i, (q, p, y) in enumerate(BOOLQ)
            ],
        )
        write_jsonl(
            glue / "MultiRC" / ("train.jsonl" if split == "train" else "val.jsonl"),
            [multirc_row(i, passage, qs) for i, (passage, qs) in enumerate(MULTIRC)],
        )
        write_jsonl(
            glue / "WSC" / ("train.jsonl" if split == "train" else "val.jsonl"),
            [
                {
                    "text": text,
                    "target": {
                        "span1_text": s1,
                        "span1_index": text.split().index(s1) if s1 in text.split() else 1,
                        "span2_text": s2,
                        "span2_index": text.split().index(s2),
                    },
                    "idx": i,
                    "label": y,
                }
                for i, (text, s1, s2, y) in enumerate(WSC)
            ],
        )
    mnli = [
        [i, i, f"{i}e", genre, "( a )", "( b )", "(ROOT a)", "(ROOT b)", s1, s2, y, y]
        for i, (s1, s2, y, genre) in enumerate(MNLI)
    ]
    write_tsv(glue / "MNLI" / "train.tsv", MNLI_HEADER, mnli)
    dev_header = [*MNLI_HEADER[:-1], "label2", "label3", "label4", "label5", "gold_label"]
    dev = [[*r[:-1], r[-1], r[-1], r[-1], r[-1], r[-1]] for r in mnli]
    write_tsv(glue / "MNLI" / "dev_matched.tsv", dev_header, dev[:4])
    write_tsv(glue / "MNLI" / "dev_mismatched.tsv", dev_header, dev[2:])


def multirc_row(idx: int, passage: str, qs: list) -> dict:
    return {
        "idx": idx,
        "version": 1.1,
        "passage": {
            "text": passage,
            "questions": [
                {
                    "question": q,
                    "idx": qi,
                    "answers": [
                        {"text": a, "idx": ai, "label": y} for ai, (a, y) in enumerate(answers)
                    ],
                }
                for qi, (q, answers) in enumerate(qs)
            ],
        },
    }


def write_zero_shot(root: Path) -> None:
    """BabyLM's blimp_filtered/, supplement_filtered/ and ewok_filtered/ under `root`."""
    for folder, suite in (("blimp_filtered", BLIMP_FILTERED), ("supplement_filtered", SUPPLEMENT)):
        for name, pairs in suite.items():
            rows = [{"sentence_good": g, "sentence_bad": b, "UID": name} for g, b in pairs]
            write_jsonl(root / folder / f"{name}.jsonl", rows)
    for name, items in EWOK.items():
        rows = [
            {"Domain": name, "Context1": c, "Context2": "", "Target1": t1, "Target2": t2}
            for c, t1, t2 in items
        ]
        write_jsonl(root / "ewok_filtered" / f"{name}.jsonl", rows)


def link_real_glue(data_root: Path, glue: Path) -> None:
    """The real MRPC and RTE, linked in place (never copied)."""
    glue.mkdir(parents=True, exist_ok=True)
    for task in ("MRPC", "RTE"):
        (glue / task).symlink_to(data_root / "glue" / task, target_is_directory=True)


TINY_SLICE_BYTES = 60_000  # per source file of the corpus slice the tiny checkpoint trains on


def train_tiny_checkpoint(data_root: Path, root: Path) -> Path:
    """A real tiny LLaMA: 500-token BPE, 2 layers of width 32, one epoch of ~10k tokens."""
    from trainers.config import DataConfig, ModelConfig, RecipeConfig, TrainingConfig
    from trainers.recipe import train

    for split in ("train", "dev", "test"):
        (root / "corpus" / split).mkdir(parents=True)
        for source in sorted((data_root / "babylm-mini" / split).iterdir()):
            text = source.read_bytes()[:TINY_SLICE_BYTES].decode("utf-8", errors="ignore")
            (root / "corpus" / split / source.name).write_text(text, encoding="utf-8")
    config = RecipeConfig(
        data=DataConfig(
            root=root,
            corpus=root / "corpus",
            vocab_size=500,
            seq_length=32,
            max_train_tokens=10_000,
            max_eval_tokens=2_000,
            cache_dir=root / "cache",
        ),
        model=ModelConfig(
            preset=None,
            hidden_size=32,
            intermediate_size=64,
            num_layers=2,
            num_heads=4,
            num_kv_heads=2,
            max_position_embeddings=64,
            tie_embeddings=False,
        ),
        training=TrainingConfig(
            epochs=1, lr=5e-3, batch_size=16, warmup_steps=5, threads=1, device="cpu"
        ),
        output_dir=root / "run",
    )
    return train(config, progress=False).final_dir
