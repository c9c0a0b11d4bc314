"""BabyLlama-2's per-source corpus cleaning (its `mrclean` step), rule for rule.

The reference cleans each BabyLM file by its source name (the file's stem: `childes.train`
is cleaned as childes) before it trains the tokenizer and tokenizes. Its start, end and
padding strings are all empty, so every "wrap in <s> ... </s><pad>..." of its cleaners is a
no-op and some of them reduce to deleting text: a blank-line separator "\\n\\n" is replaced
by the empty start/padding strings, i.e. removed. The functions below apply exactly those
effective rules. A source the reference has no cleaner for (here `fairy_tales`) is left
unchanged (the reference would stop with a KeyError); `uncleaned_sources` names them.

Example::

    clean_text("childes", "you  want it ?\\n")  # -> "you want it?\\n"
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "CLEANED_MARKER",
    "CLEANERS",
    "CLEANING_VERSION",
    "clean_text",
    "cleaning_stamp",
    "is_cleaned_corpus",
    "uncleaned_sources",
]

CLEANING_VERSION = 1  # bump when a rule changes: it keys the cleaned-text cache
CLEANED_MARKER = "cleaning.json"
"""Written at a corpus's root by `sweep data prepare --clean`: its text is already clean."""

_BLANK_LINE = re.compile(r"\n\n")
_RUNS_OF_SPACES = re.compile(r"[ \t\u00A0]+")
_SPACE_BEFORE_PUNCTUATION = re.compile(r"[ \t\u00A0]([.,;!?])")
_SPACE_BEFORE_APOSTROPHE = re.compile(r"([\w\d])[ \t\u00A0](['’]\w)")
_WIKI_HEADING = re.compile(r"= = = (.+?) = = =\n")
_SUBTITLE_CREDIT = re.compile(r"^.*subtitle.*$\n", re.MULTILINE | re.IGNORECASE)
_SENTENCE_END = re.compile(r"([.!?]\s*)")
_NOT_LETTERS = re.compile(r"\(.*?\)|[.!?]")


def _unchanged(text: str) -> str:
    return text


def _drop_blank_lines(text: str) -> str:
    # the reference replaces "\n\n" by its (empty) padding + start strings
    return _BLANK_LINE.sub("", text)


def _tidy_spaces(text: str) -> str:
    text = _RUNS_OF_SPACES.sub(" ", text)
    return _SPACE_BEFORE_PUNCTUATION.sub(r"\1", text)


def _childes(text: str) -> str:
    return _tidy_spaces(text)


def _bnc_spoken(text: str) -> str:
    return _drop_blank_lines(_tidy_spaces(text))


def _cbt(text: str) -> str:
    return _SPACE_BEFORE_APOSTROPHE.sub(r"\1\2", _tidy_spaces(text))


def _open_subtitles(text: str) -> str:
    return _SUBTITLE_CREDIT.sub("", text)


def _wikipedia(text: str) -> str:
    text = _WIKI_HEADING.sub(r"\1", text)
    stripped = "\n".join(line.strip() for line in text.splitlines())
    return _drop_blank_lines(stripped[1:])  # the reference drops the first character


def _qed(text: str) -> str:
    lines = []
    for line in text.splitlines():
        letters = _NOT_LETTERS.sub("", line)
        # mostly upper case (OCR'd captions): sentence case, with l read as I
        if letters and sum(c.isupper() for c in letters) / len(letters) >= 0.5:
            pieces = _SENTENCE_END.split(line.replace("l", "I"))
            line = "".join(piece.capitalize() for piece in pieces)
        lines.append(line.strip())
    return "\n".join(lines)


CLEANERS: dict[str, Callable[[str], str]] = {
    "bnc_spoken": _bnc_spoken,
    "cbt": _cbt,
    "childes": _childes,
    "children_stories": _unchanged,
    "gutenberg": _unchanged,
    "open_subtitles": _open_subtitles,
    "qed": _qed,
    "simple_wiki": _drop_blank_lines,
    "switchboard": _unchanged,
    "wikipedia": _wikipedia,
}
"""Source name -> the effective rule of the reference's cleaner for it."""


def clean_text(source: str, text: str) -> str:
    """`text` of source `source` (a file stem) as the reference's cleaning leaves it."""
    return CLEANERS.get(source, _unchanged)(text)


def uncleaned_sources(sources: Iterable[str]) -> list[str]:
    """The sources the reference has no cleaner for (left unchanged), sorted."""
    return sorted(set(sources) - set(CLEANERS))


def is_cleaned_corpus(corpus: Path) -> bool:
    """Whether `corpus` holds text this version of the cleaning already cleaned."""
    marker = Path(corpus) / CLEANED_MARKER
    if not marker.is_file():
        return False
    try:
        stamp = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(stamp, dict) and stamp.get("cleaning") == cleaning_stamp()["cleaning"]


def cleaning_stamp() -> dict[str, str]:
    """What `CLEANED_MARKER` holds: the cleaning's name and version."""
    return {"cleaning": f"babyllama2-v{CLEANING_VERSION}"}
