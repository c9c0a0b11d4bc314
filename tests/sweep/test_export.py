"""`sweep best` and `sweep export` on a real finished study: the exported folder loads with
transformers alone and scores a BLiMP pair exactly as the trial's own checkpoint does."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from sweep.cli import app
from sweep.store import read_trials, render_status

pytestmark = pytest.mark.slow


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def flat(text: str) -> str:
    return " ".join(text.split())


def _pair_log_probs(model, tokenizer, good: str, bad: str) -> tuple[float, float]:
    """Sum of log p(token | BOS, earlier tokens), computed here from the logits."""
    scores = []
    for sentence in (good, bad):
        ids = [tokenizer.bos_token_id, *tokenizer(sentence, add_special_tokens=False)["input_ids"]]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0]
        log_probs = torch.log_softmax(logits[:-1].double(), dim=-1)
        scores.append(float(log_probs[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum()))
    return scores[0], scores[1]


def test_best_picks_the_lowest_dev_loss_and_the_highest_blimp(tiny_study) -> None:
    trials = read_trials(tiny_study.url, "demo")
    done = trials[trials["status"] == "COMPLETE"]
    # without --stage: the best student, never a teacher or a 10x-data reference (issue 27)
    students = done[done["stage_kind"] == "students"]
    lowest = students.loc[students["dev_loss"].idxmin()]
    result = run("best", str(tiny_study.path))
    assert result.exit_code == 0, result.output
    assert "best trial by dev_loss (lower is better) among the students stages students" in (
        " ".join(result.output.split())
    )
    assert f"trial {lowest.trial_id}: {lowest.stage} #{lowest.number}" in result.output
    assert f"dev_loss={lowest.dev_loss:.4g}" in result.output
    assert f"checkpoint: {lowest.checkpoint_uri}" in result.output
    assert f"--trial {lowest.trial_id} --out DIR" in result.output
    # its teachers named as the live table and `sweep status` name the ensemble: stage and
    # Optuna number in rank order, never store ids (issue 27.9)
    numbers = dict(zip(trials["trial_id"], trials["number"], strict=True))
    named = "teachers " + ", ".join(f"#{numbers[i]}" for i in lowest.teacher_ids)
    assert f"distilled from {named}" in result.output
    assert str(list(lowest.teacher_ids)) not in result.output
    console = Console(width=200, record=True)
    console.print(render_status(tiny_study.url, "demo"))
    assert f"ensemble of {named}" in console.export_text()

    teachers = done[done["stage"] == "teachers"]
    top = teachers.loc[teachers["blimp_overall"].idxmax()]
    result = run("best", str(tiny_study.path), "--stage", "teachers", "--by", "blimp_overall")
    assert result.exit_code == 0, result.output
    assert f"trial {top.trial_id}: teachers #{top.number}" in result.output
    assert "BLiMP (67 paradigms) by group:" in result.output
    assert "island_effects" in result.output

    bad = run("best", str(tiny_study.path), "--by", "dev_los")
    assert bad.exit_code == 2
    assert "--by 'dev_los': not a recorded metric; choose one of dev_loss" in flat(bad.output)
    bad = run("best", str(tiny_study.path), "--stage", "studnets")
    assert bad.exit_code == 2 and "stages: ['teachers'" in flat(bad.output)


def test_trial_folders_have_readable_names(tiny_study) -> None:
    trials = read_trials(tiny_study.url, "demo")
    for row in trials.itertuples():
        folder = Path(row.checkpoint_uri).parent.name
        assert re.fullmatch(rf"{row.stage}-{row.number:03d}-{row.tune_trial_id}", folder), folder
    for stage_dir in (Path(tiny_study.path).parent / "runs" / "demo").iterdir():
        assert any(p.is_dir() for p in stage_dir.iterdir()), f"{stage_dir} holds no trial"


def test_export_loads_with_transformers_and_scores_like_the_trial(
    tiny_study, data_root: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    trials = read_trials(tiny_study.url, "demo")
    student = trials[(trials["stage"] == "students") & (trials["status"] == "COMPLETE")].iloc[0]
    out = tmp_path / "model"
    result = run(
        "export", str(tiny_study.path), "--trial", str(student.trial_id), "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert not (out / "train_state.pt").exists()

    model = AutoModelForCausalLM.from_pretrained(out)
    # an exported model generates with its KV cache (training saved use_cache: false)
    assert model.config.use_cache is True
    assert model.generation_config.use_cache is not False
    tokenizer = AutoTokenizer.from_pretrained(out)
    original = AutoModelForCausalLM.from_pretrained(student.checkpoint_uri)
    row = json.loads((data_root / "blimp" / "anaphor_gender_agreement.jsonl").open().readline())
    good, bad = _pair_log_probs(model, tokenizer, row["sentence_good"], row["sentence_bad"])
    assert math.isfinite(good) and math.isfinite(bad) and good != bad
    assert (good, bad) == _pair_log_probs(
        original, tokenizer, row["sentence_good"], row["sentence_bad"]
    )

    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\n")
    assert f"# demo students #{student.number}" in card
    assert f"store trial id {student.trial_id}" in card
    assert f"| dev_loss | {student.dev_loss:.4g} |" in card
    assert f"| blimp_overall | {student.blimp_overall:.4g} |" in card
    assert card.count("| island_effects |") == 1
    assert len(re.findall(r"^\| [a-z_]+ \| 0\.\d{3} \|$", card, re.M)) == 12  # BLiMP groups
    assert re.search(r"distilled from the teacher ensemble teachers #\d+, #\d+ \(alpha", card), card
    assert "corpus: `babylm-mini`" in card

    # STAGE/NUMBER names the same trial; a used folder and an unknown trial are refused
    again = tmp_path / "again"
    same = run(
        "export", str(tiny_study.path), "--trial", f"students/{student.number}", "--out", str(again)
    )
    assert same.exit_code == 0, same.output
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    used = run("export", str(tiny_study.path), "--trial", str(student.trial_id), "--out", str(out))
    assert used.exit_code == 2 and "exists and is not empty" in flat(used.output)
    missing = run("export", str(tiny_study.path), "--trial", "9999", "--out", str(tmp_path / "x"))
    assert missing.exit_code == 2 and "no such trial" in flat(missing.output)
    assert not (tmp_path / "x").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "model"]
