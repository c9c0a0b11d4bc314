"""seeds: auto: a re-seeding stage (repeats, reference) grown in rounds until decided.

The rounds are a fixed schedule of seed counts (first_look, then round_seeds more each round,
up to max_seeds); after a finished round the driver reads the store as the report does
(analysis.sequential.stage_look) and stops once every comparison those seeds feed is decided
or past deciding. Where to go next is a function of the store alone, so a driver that crashed
mid-round finishes that round and then looks as it would have, and a finished study whose
max_seeds was raised looks again and continues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sweep.config import SeededStage

__all__ = ["NextRound", "next_round", "schedule"]


def schedule(stage: SeededStage, cap: int | None = None) -> list[int]:
    """The seed counts at which the stage looks: first_look, + round_seeds, ..., max_seeds.

    `cap` (a reference stage: the seeds its repeats hold) lowers max_seeds: a reference seed
    with no repeat to pair with adds nothing to any comparison.
    """
    most = stage.most_seeds if cap is None else min(stage.most_seeds, cap)
    if most <= 0:
        return []
    looks = list(range(min(stage.first_look, most), most + 1, stage.round_seeds))
    return looks if looks[-1] == most else [*looks, most]


@dataclass(frozen=True)
class NextRound:
    """What the driver does next: run the stage up to `seeds`, or stop (seeds None)."""

    seeds: int | None
    why: str


def next_round(
    stage: SeededStage,
    held: int,
    finished: bool,
    look: Callable[[], tuple[bool, str]],
    *,
    cap: int | None = None,
) -> NextRound:
    """The next round of a seeds: auto stage that holds `held` seeds.

    `finished`: every trial of the stage has ended (no round cut short). `look()` reads the
    store: (settled, what it says), settled meaning every comparison the seeds feed is
    decided or cannot be decided by more seeds.
    """
    looks = schedule(stage, cap)
    if not looks:
        return NextRound(None, "no seeds to run (max_seeds 0, or nothing to pair with)")
    if not finished or held not in looks:  # a round cut short, or none run yet: finish it
        target = next((n for n in looks if n > held or (n == held and not finished)), None)
        if target is None:
            return NextRound(None, f"{held} seeds held, past the last look ({looks[-1]})")
        return NextRound(target, f"round to {target} seeds")
    settled, said = look()
    if settled:
        return NextRound(None, f"decided at {held} seeds: {said}")
    later = [n for n in looks if n > held]
    if not later:
        return NextRound(None, f"max_seeds reached at {held} seeds, still open: {said}")
    return NextRound(later[0], f"open at {held} seeds ({said}); next round to {later[0]}")
