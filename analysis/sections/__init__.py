"""The report's sections: each a function of Frames returning its numbers and its figures.

One module per section. `Section.data` holds every number the section shows (the report
embeds them as JSON); `Section.blocks` the figures and tables, each with the one sentence that
reads it. The arithmetic is in analysis.stats, analysis.headline and analysis.verdict, and the
comparisons are declared in analysis.comparisons; here it is only chosen, worded and laid out.
analysis.report renders the sections with a Jinja2 template.
"""

from analysis.sections._format import Block, Section, fmt, fmt_diff, fmt_interval, fmt_num, fmt_p
from analysis.sections.cluster import cluster_section
from analysis.sections.evidence import comparison_section
from analysis.sections.expected_best import expected_best_section
from analysis.sections.headline import glue_table, headline_section
from analysis.sections.methods import blimp_scoring, methods_section
from analysis.sections.paradigms import paradigm_section
from analysis.sections.sensitivity import SMALL_SAMPLE, sensitivity_section
from analysis.sections.verdict import verdict_section

__all__ = [
    "SECTIONS",
    "SMALL_SAMPLE",
    "Block",
    "Section",
    "blimp_scoring",
    "cluster_section",
    "comparison_section",
    "expected_best_section",
    "fmt",
    "fmt_diff",
    "fmt_interval",
    "fmt_num",
    "fmt_p",
    "glue_table",
    "headline_section",
    "methods_section",
    "paradigm_section",
    "sensitivity_section",
    "verdict_section",
]

SECTIONS = (
    verdict_section,
    headline_section,
    comparison_section,
    expected_best_section,
    sensitivity_section,
    paradigm_section,
    cluster_section,
    methods_section,
)
"""The report's sections, in reading order."""
