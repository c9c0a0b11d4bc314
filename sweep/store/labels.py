"""How a trial is named to a user: its stage and Optuna number (`teachers #3`), never the
store id, so every command, the live table and the model card name an ensemble alike."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ensemble_label"]


def ensemble_label(members: Sequence[tuple[str, int | str]], notes: Sequence[str] = ()) -> str:
    """'teachers #2, #0': an ensemble's teacher trials, (stage, number) in rank order; a new
    stage starts a new group ('teachers #2; teachers_b #1'); notes[i] follows member i.

    Example::

        ensemble_label([("teachers", 2), ("teachers", 0)])  # 'teachers #2, #0'
    """
    groups: list[str] = []
    previous: str | None = None
    for i, (stage, number) in enumerate(members):
        pick = f"#{number}{notes[i] if i < len(notes) else ''}"
        if stage == previous:
            groups[-1] += f", {pick}"
        else:
            groups.append(f"{stage} {pick}")
        previous = stage
    return "; ".join(groups)
