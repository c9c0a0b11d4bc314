"""Three ways the verdict went wrong on finished stores (issue 23), each pinned on a study
written through the Store API and read back as `sweep report` reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.load import load_frames
from analysis.sections import expected_best_section, verdict_section
from analysis.verdict import verdicts
from tests.analysis.verdict_stores import TASKS, Plan, write_study


def _store(tmp_path: Path, plan: Plan) -> str:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    write_study(url, plan)
    return url


def _metric(found: list, comparison: str, metric: str):  # type: ignore[no-untyped-def]
    cv = next(cv for cv in found if cv.comparison == comparison)
    return next(v for v in cv.metrics if v.metric == metric)


def test_unequal_epochs_are_not_compared_as_if_alike(tmp_path: Path) -> None:
    """Teachers 1 epoch, students 2: the students' extra epoch is no evidence of distillation."""
    plan = Plan(teacher_epochs=1, student_epochs=2, student_blimp=0.62, teacher_blimp=0.60)
    frames = load_frames(_store(tmp_path, plan))
    found = verdicts(frames)
    for metric in ("blimp_overall", "test_loss"):
        v = _metric(found, "students vs teachers", metric)
        assert v.p_holm is not None and v.p_holm < 0.05  # the seed pairs alone would decide
        assert v.verdict == "inconclusive"
        assert v.guard is not None and v.guard["refused"]
        assert "no epoch count in common" in (v.reason or "")
        assert "1 epoch" in v.reason and "2 epochs" in v.reason  # type: ignore[operator]
    section = expected_best_section(frames)
    assert section.data["matched_budget"] == {}  # nothing compared at matched budget
    assert "they are not compared" in section.blocks[0].reading
    warning = " ".join(verdict_section(frames).data["warnings"])
    assert "no verdict between them is vouched for" in warning
    assert "only trials with the same epochs" not in warning


def test_a_truly_better_reference_says_worse(tmp_path: Path) -> None:
    """The reference is not a search: the students-vs-teachers pools must not guard it."""
    plan = Plan(student_blimp=0.60, teacher_blimp=0.60, reference_blimp=0.63)
    found = verdicts(load_frames(_store(tmp_path, plan)))
    ref = next(cv for cv in found if cv.comparison == "students vs reference")
    assert ref.verdict == "worse"
    for v in ref.metrics:
        assert v.verdict == "worse" and v.guard is None
        assert (
            v.difference is not None
            and v.difference * (1 if v.metric == "blimp_overall" else -1) < 0
        )
    # the searches themselves are alike, and the teachers comparison stays undecided
    assert next(cv for cv in found if cv.comparison == "students vs teachers").verdict == (
        "inconclusive"
    )


def test_blimp_at_chance_counts_pairs_from_the_paradigms(tmp_path: Path) -> None:
    """The overall row has no pair count (as the trainable writes it): the paradigms do."""
    plan = Plan(student_blimp=0.516, teacher_blimp=0.493, pairs_per_paradigm=55, noise=0.002)
    frames = load_frames(_store(tmp_path, plan))
    assert set(frames.trials["blimp_pairs"]) == {55 * len(TASKS)}
    v = _metric(verdicts(frames), "students vs teachers", "blimp_overall")
    assert v.p is not None and v.p < 0.05 and not v.in_family
    assert v.verdict == "inconclusive"
    assert "inside the 95% binomial interval of chance" in (v.reason or "")
    assert f"{55 * len(TASKS)} scored pairs" in (v.reason or "")


@pytest.mark.parametrize("n", [None, 2010])
def test_an_overall_count_when_written_is_used(tmp_path: Path, n: int | None) -> None:
    import pandas as pd

    from analysis.load import with_contract_columns

    trials = pd.DataFrame({"trial_id": [1], "stage": ["teachers"], "role": ["teacher"]})
    ev = pd.DataFrame(
        [
            {"trial_id": 1, "suite": "blimp", "task": "a", "metric": "accuracy", "n": 1000},
            {"trial_id": 1, "suite": "blimp", "task": "b", "metric": "accuracy", "n": 340},
            {"trial_id": 1, "suite": "blimp", "task": "overall", "metric": "accuracy", "n": n},
        ]
    )
    out = with_contract_columns(trials, evaluations=ev)
    assert out["blimp_pairs"].iloc[0] == (1340 if n is None else n)
