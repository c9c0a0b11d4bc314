"""Section 5: BLiMP per paradigm and per phenomenon group."""

from __future__ import annotations

from analysis import figures
from analysis.headline import paradigm_differences
from analysis.load import Frames
from analysis.sections._format import Block, Section
from analysis.verdict import ALPHA


def paradigm_section(frames: Frames) -> Section:
    section = Section("paradigms", "5. BLiMP per paradigm and per phenomenon group")
    table, chosen = paradigm_differences(frames)
    section.data["paradigms"] = {"chosen": chosen, "table": table.to_dict(orient="records")}
    if table.empty:
        section.blocks.append(
            Block(
                "No per-paradigm BLiMP results for a completed best student and best teacher are in the "
                "store, so no paradigm-level difference can be shown."
            )
        )
        return section
    para = table[table["level"] == "paradigm"]
    grp = table[table["level"] == "group"]
    sig = para[para["significant"]]
    reading = (
        f"The best student of stage {chosen['student_stage']} (#{chosen['student_number']}, "
        "the last students stage) minus the best teacher of stage "
        f"{chosen['teacher_stage']} (#{chosen['teacher_number']}), each the lowest dev loss "
        "of its stage: the student is ahead on "
        f"{int((para['difference'] > 0).sum())} of {len(para)} paradigms; "
        f"{len(sig)} difference(s) survive Benjamini-Hochberg at q < {ALPHA:g} "
        f"({int((sig['difference'] > 0).sum())} in the student's favour), and "
        f"{int(grp['significant'].sum())} of {len(grp)} phenomenon groups do. Cells are "
        "percentage points, ● marks q < 0.05; hover a cell for the paradigm's name."
    )
    section.blocks.append(Block(reading, figure=figures.paradigm_heatmap(table)))
    return section
