"""The researcher's own data: check a data root, and lay out a BabyLM release for trainers.

A data root holds one or more BabyLM-layout corpora (`<corpus>/{train,dev,test}/<source>.<split>`),
`blimp/` (the 67 paradigm .jsonl files) and `glue/` (`MRPC/`, `RTE/` with train.tsv, dev.tsv);
docs/DATA.md says where each comes from. `check_data_root` is `sweep data check`,
`prepare_babylm` is `sweep data prepare`.

Example::

    report = check_data_root(Path("../shared/data"))
    print(*report.lines, sep="\\n"); assert not report.problems
    prepare_babylm(Path("~/babylm/text_data").expanduser(), Path("data/babylm-10m"), size="10M")
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sweep.errors import SweepError

__all__ = [
    "BLIMP_PARADIGMS",
    "DataReport",
    "check_data_root",
    "prepare_babylm",
    "prepare_evaluation",
]

SPLITS = ("train", "dev", "test")

BLIMP_PARADIGMS: tuple[str, ...] = (
    "adjunct_island",
    "anaphor_gender_agreement",
    "anaphor_number_agreement",
    "animate_subject_passive",
    "animate_subject_trans",
    "causative",
    "complex_NP_island",
    "coordinate_structure_constraint_complex_left_branch",
    "coordinate_structure_constraint_object_extraction",
    "determiner_noun_agreement_1",
    "determiner_noun_agreement_2",
    "determiner_noun_agreement_irregular_1",
    "determiner_noun_agreement_irregular_2",
    "determiner_noun_agreement_with_adj_2",
    "determiner_noun_agreement_with_adj_irregular_1",
    "determiner_noun_agreement_with_adj_irregular_2",
    "determiner_noun_agreement_with_adjective_1",
    "distractor_agreement_relational_noun",
    "distractor_agreement_relative_clause",
    "drop_argument",
    "ellipsis_n_bar_1",
    "ellipsis_n_bar_2",
    "existential_there_object_raising",
    "existential_there_quantifiers_1",
    "existential_there_quantifiers_2",
    "existential_there_subject_raising",
    "expletive_it_object_raising",
    "inchoative",
    "intransitive",
    "irregular_past_participle_adjectives",
    "irregular_past_participle_verbs",
    "irregular_plural_subject_verb_agreement_1",
    "irregular_plural_subject_verb_agreement_2",
    "left_branch_island_echo_question",
    "left_branch_island_simple_question",
    "matrix_question_npi_licensor_present",
    "npi_present_1",
    "npi_present_2",
    "only_npi_licensor_present",
    "only_npi_scope",
    "passive_1",
    "passive_2",
    "principle_A_c_command",
    "principle_A_case_1",
    "principle_A_case_2",
    "principle_A_domain_1",
    "principle_A_domain_2",
    "principle_A_domain_3",
    "principle_A_reconstruction",
    "regular_plural_subject_verb_agreement_1",
    "regular_plural_subject_verb_agreement_2",
    "sentential_negation_npi_licensor_present",
    "sentential_negation_npi_scope",
    "sentential_subject_island",
    "superlative_quantifiers_1",
    "superlative_quantifiers_2",
    "tough_vs_raising_1",
    "tough_vs_raising_2",
    "transitive",
    "wh_island",
    "wh_questions_object_gap",
    "wh_questions_subject_gap",
    "wh_questions_subject_gap_long_distance",
    "wh_vs_that_no_gap",
    "wh_vs_that_no_gap_long_distance",
    "wh_vs_that_with_gap",
    "wh_vs_that_with_gap_long_distance",
)
"""The 67 BLiMP paradigms (Warstadt et al. 2020), one `<name>.jsonl` each."""

_REQUIRED_TASKS = ("mrpc", "rte")
"""The fine-tuning tasks every data root has (the demo's); the others are checked when present."""

# Where each split lives in the BabyLM releases: 2024/2025 `text_data/` (train_10M,
# train_100M, dev, test) and 2023 `babylm_data/` (babylm_10M, babylm_100M, babylm_dev,
# babylm_test); last, a corpus already in the trainers' layout (train, dev, test).
_RELEASE_FOLDERS = {
    "train": ("train_{size}", "babylm_{size}", "train"),
    "dev": ("dev", "babylm_dev"),
    "test": ("test", "babylm_test"),
}
_RELEASE_WRAPPERS = ("", "text_data", "babylm_data")


@dataclass
class DataReport:
    """What `sweep data check` found: one line per item checked, one per problem."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check_data_root(root: Path) -> DataReport:
    """Check every corpus under `root` (or `root` itself if it is a corpus), blimp/ and glue/."""
    root = Path(root)
    report = DataReport()
    if not root.is_dir():
        report.problems.append(f"{root}: not a directory; pass the data root (or a corpus folder)")
        return report
    if _is_corpus(root):
        _check_corpus(root, report)
        return report
    corpora = sorted(p for p in root.iterdir() if p.is_dir() and _is_corpus(p))
    if not corpora:
        report.problems.append(
            f"{root}: no corpus folder (one with train/, dev/, test/ of <source>.<split> files); "
            "`sweep data prepare` lays out a BabyLM release"
        )
    for corpus in corpora:
        _check_corpus(corpus, report)
    _check_blimp(root / "blimp", report)
    _check_glue(root / "glue", report)
    _check_zero_shot(root, report)
    return report


def _is_corpus(folder: Path) -> bool:
    """A train/ folder, or two of the three splits (a corpus missing one is still checked)."""
    present = [split for split in SPLITS if (folder / split).is_dir()]
    return "train" in present or len(present) >= 2


def _check_corpus(corpus: Path, report: DataReport) -> None:
    counts = []
    for split in SPLITS:
        folder = corpus / split
        if not folder.is_dir():
            report.problems.append(f"{folder}: missing; the trainers need train/, dev/ and test/")
            continue
        files = sorted(p for p in folder.glob(f"*.{split}") if p.is_file())
        others = sorted(p.name for p in folder.iterdir() if p.is_file() and p not in files)
        if not files:
            hint = f" (found {', '.join(others[:3])}: rename to <source>.{split})" if others else ""
            report.problems.append(f"{folder}: no <source>.{split} text files{hint}")
            continue
        words = {p.stem: _words(p) for p in files}
        total = sum(words.values())
        if total == 0:
            report.problems.append(f"{folder}: every *.{split} file is empty")
        for name, n in words.items():
            if n == 0 and total:
                report.problems.append(f"{folder / f'{name}.{split}'}: empty")
        counts.append(f"{split} {total:,} words ({len(files)} sources)")
    from sweep.data_content import corpus_content_problems

    report.problems += corpus_content_problems(corpus, blank=False)  # bytes that are not UTF-8
    if counts:
        report.lines.append(f"corpus {corpus.name}: {'; '.join(counts)}")


def _words(path: Path) -> int:
    words = 0
    with path.open("rb") as handle:
        for line in handle:
            words += len(line.split())
    return words


def _check_blimp(folder: Path, report: DataReport) -> None:
    if not folder.is_dir():
        report.problems.append(
            f"{folder}: missing; put the 67 BLiMP paradigm .jsonl files there (docs/DATA.md)"
        )
        return
    present = {p.stem: p for p in folder.glob("*.jsonl")}
    missing = [name for name in BLIMP_PARADIGMS if name not in present]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        report.problems.append(
            f"{folder}: {len(missing)} of the 67 BLiMP paradigms missing ({shown})"
        )
    pairs = 0
    for name in sorted(present):
        n, problem = _blimp_pairs(present[name])
        pairs += n
        if problem:
            report.problems.append(problem)
    found = len(present) - len(set(present) - set(BLIMP_PARADIGMS))
    report.lines.append(f"blimp: {found}/67 paradigms, {pairs:,} minimal pairs")


def _blimp_pairs(path: Path) -> tuple[int, str | None]:
    from sweep.data_content import blimp_pairs

    return blimp_pairs(path)


def _check_glue(folder: Path, report: DataReport) -> None:
    from trainers.errors import TrainerError
    from trainers.evaluate.tasks import FINETUNE_TASKS, read_task, task_files

    if not folder.is_dir():
        report.problems.append(f"{folder}: missing; put GLUE MRPC/ and RTE/ there (docs/DATA.md)")
        return
    absent = []
    for task, spec in FINETUNE_TASKS.items():
        files = task_files(folder, task)  # the official folder, else BabyLM's filtered files
        if task not in _REQUIRED_TASKS and not files.present:
            absent.append(f"{task} ({spec.folder}/{', '.join(spec.files.values())})")
            continue
        rows = []
        for split in spec.files:
            try:
                examples = read_task(folder, task, split)
            except TrainerError as exc:  # names the file, line or column and what to fix
                report.problems.append(str(exc).removeprefix("data.glue: "))
                continue
            if not examples:
                report.problems.append(f"{files.paths[split]}: no rows")
            rows.append(f"{split} {len(examples):,}")
        if rows:
            report.lines.append(f"glue {task}: {', '.join(rows)} rows ({files.layout})")
    if absent:
        report.lines.append(
            f"glue: not set up (optional, docs/DATA.md; `sweep data prepare-eval`): {'; '.join(absent)}"
            " (or BabyLM's filtered glue_filtered/<task>.train.jsonl, .valid.jsonl)"
        )


def _check_zero_shot(root: Path, report: DataReport) -> None:
    from trainers.errors import TrainerError
    from trainers.evaluate.zeroshot import ZERO_SHOT_SUITES, read_zero_shot

    absent = []
    for suite, spec in ZERO_SHOT_SUITES.items():
        folder = root / spec.folder
        if not folder.is_dir():
            absent.append(f"{suite} ({spec.folder}/)")
            continue
        try:
            subtasks = read_zero_shot(folder, suite)
        except TrainerError as exc:
            report.problems.append(str(exc))
            continue
        items = sum(len(v) for v in subtasks.values())
        report.lines.append(f"{suite}: {len(subtasks)} subtasks, {items:,} items")
    if absent:
        report.lines.append(f"zero-shot: not set up (optional, docs/DATA.md): {'; '.join(absent)}")


def prepare_evaluation(source: Path, root: Path) -> list[str]:
    """Lay out the official task downloads found under `source` in the data root `root`.

    Looks (up to three levels down) for GLUE's task folders (CoLA/, SST-2/, ... as the
    GLUE download unpacks), SuperGLUE's (BoolQ/, MultiRC/, WSC/) and BabyLM's
    evaluation_data/ suites (blimp_filtered/, supplement_filtered/, ewok_filtered/); each is
    read in full first (a wrong layout names its file), then copied to `root/glue/<Task>/`
    or `root/<suite>/` through a temporary folder. A destination that exists is left alone.
    Returns one line per thing laid out or skipped.
    """
    from trainers.errors import TrainerError
    from trainers.evaluate.tasks import FINETUNE_TASKS, read_task
    from trainers.evaluate.zeroshot import ZERO_SHOT_SUITES, read_zero_shot

    source, root = Path(source), Path(root)
    if not source.is_dir():
        raise SweepError(f"{source}: not a directory; pass the folder holding the downloads")
    folders = _folders_by_name(source, depth=3)
    plan: list[tuple[Path, Path, list[str]]] = []  # (found, destination, files)
    lines = []
    by_folder: dict[str, list[str]] = {}  # MNLI/ holds mnli and mnli-mm
    for task, spec in FINETUNE_TASKS.items():
        by_folder.setdefault(spec.folder, []).append(task)
    for name, tasks in by_folder.items():
        found = folders.get(name)
        if found is None:
            continue
        try:  # every split read in full: a wrong layout names its file and column
            for task in tasks:
                for split in FINETUNE_TASKS[task].files:
                    read_task(found.parent, task, split)
        except TrainerError as exc:
            raise SweepError(f"{found}: not the official {name} files: {exc}") from None
        files = sorted({f for t in tasks for f in FINETUNE_TASKS[t].files.values()})
        plan.append((found, root / "glue" / name, files))
    for suite, zspec in ZERO_SHOT_SUITES.items():
        found = folders.get(zspec.folder)
        if found is None:
            continue
        try:
            read_zero_shot(found, suite)
        except TrainerError as exc:
            raise SweepError(f"{found}: not BabyLM's {zspec.folder}: {exc}") from None
        plan.append((found, root / zspec.folder, sorted(p.name for p in found.glob("*.jsonl"))))
    if not plan:
        raise SweepError(
            f"{source}: no task folder found (CoLA/, MNLI/, BoolQ/, ewok_filtered/, ...); "
            "pass the folder the GLUE, SuperGLUE or BabyLM evaluation_data downloads unpack to"
        )
    for found, destination, files in plan:
        if destination.exists():
            lines.append(f"{destination}: exists, left as it is")
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
        try:
            for name in files:
                shutil.copyfile(found / name, staging / name)
            staging.rename(destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        lines.append(f"{destination}: {len(files)} files from {found}")
    return lines


def _folders_by_name(source: Path, depth: int) -> dict[str, Path]:
    """Folder name -> the shallowest folder of that name under `source` (itself included)."""
    found: dict[str, Path] = {source.name: source}
    level = [source]
    for _ in range(depth):
        level = [c for p in level for c in sorted(p.iterdir()) if c.is_dir()]
        for folder in level:
            found.setdefault(folder.name, folder)
    return found


def prepare_babylm(
    source: Path, target: Path, *, size: str = "10M", clean: bool = False
) -> dict[str, int]:
    """Copy a BabyLM release's train_<size>/, dev/ and test/ into the trainers' layout.

    `source` is the release folder (the one holding train_10M/, dev/, test/, or its parent
    `text_data/`; the 2023 names babylm_10M/, babylm_dev/, babylm_test/ work too, and so does
    a corpus already in the trainers' train/, dev/, test/ layout). Files keep their names
    (`<source>.<split>`). `clean`: each file goes through BabyLlama-2's cleaner for its source
    (`trainers.cleaning`, the reference's mrclean step) and the corpus is marked clean, so
    `data.pipeline: babyllama2` does not clean it again. Built in a temporary sibling folder
    and renamed, so an error leaves no half-made `target`. Returns the words per split.
    """
    from trainers.cleaning import CLEANED_MARKER, clean_text, cleaning_stamp

    source, target = Path(source), Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SweepError(f"{target}: exists and is not empty; give a new folder")
    if not source.is_dir():
        raise SweepError(f"{source}: not a directory; pass the unpacked BabyLM release")
    folders = {split: _release_folder(source, split, size) for split in SPLITS}
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        words = {}
        for split, folder in folders.items():
            files = sorted(p for p in folder.glob(f"*.{split}") if p.is_file())
            if not files:
                raise SweepError(f"{folder}: holds no *.{split} files; is it a BabyLM release?")
            (staging / split).mkdir()
            for path in files:
                if clean:  # read and written as the reference's notebook does
                    text = clean_text(path.stem, path.read_text(encoding="utf-8"))
                    (staging / split / path.name).write_text(text, encoding="utf-8")
                else:
                    shutil.copyfile(path, staging / split / path.name)
            words[split] = sum(_words(staging / split / p.name) for p in files)
        if clean:
            (staging / CLEANED_MARKER).write_text(json.dumps(cleaning_stamp()) + "\n")
        if target.exists():
            target.rmdir()
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return words


def _release_folder(source: Path, split: str, size: str) -> Path:
    tried = []
    for wrapper in _RELEASE_WRAPPERS:
        for pattern in _RELEASE_FOLDERS[split]:
            candidate = source / wrapper / pattern.format(size=size)
            tried.append(str(candidate.relative_to(source)))
            if candidate.is_dir():
                return candidate
    raise SweepError(
        f"{source}: no {split} folder of the BabyLM release (looked for {', '.join(tried[:4])}, "
        f"...); pass the unpacked release folder{' and --size' if split == 'train' else ''}"
    )
