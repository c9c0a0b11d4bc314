"""What the report says about the sweep is so (issue 27, item 6)."""

from __future__ import annotations

import re

import optuna

from analysis.load import load_frames
from analysis.sections.methods import methods_section
from analysis.sections.paradigms import paradigm_section


def _html(section) -> str:
    return " ".join(str(b.table or "") + " " + b.reading for b in section.blocks)


def test_the_methods_name_only_optuna_studies_that_exist(demo_store: str) -> None:
    frames = load_frames(demo_store, "demo")
    text = " ".join(_html(methods_section(frames)).split())
    importance = text.split("Hyperparameter importance")[1].split("</li>")[0]
    named = re.findall(r"<code>([^<]+)</code>", importance)
    studies = set(optuna.get_all_study_names(storage=demo_store))
    assert named and set(named) <= studies, (named, studies)
    # the hash says what it covers: not the file byte for byte
    assert "less where it runs" in text and "less stage sizes" in text


def test_the_heatmap_caption_names_the_stage_its_student_came_from(demo_store: str) -> None:
    frames = load_frames(demo_store, "demo")
    section = paradigm_section(frames)
    chosen = section.data["paradigms"]["chosen"]
    assert chosen["student"] is not None, chosen
    caption = _html(section)
    assert (
        f"best student of stage {chosen['student_stage']} (#{chosen['student_number']}" in caption
    )
    assert f"best teacher of stage {chosen['teacher_stage']}" in caption
