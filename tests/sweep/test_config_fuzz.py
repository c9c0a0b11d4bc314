"""Property-based fuzzing of sweep.yaml (issue 18): whatever the file holds, `sweep validate`
and `sweep run` (up to the moment it opens the store) exit 0 or 2, never with a traceback,
agree with each other, and write nothing for an invalid file.

Each example mutates the default sweep.yaml 1 to 3 times: a value replaced (ints of any
size, NaN/inf, booleans, None, unicode text, lists, mappings), a key deleted, an unknown
key added, a value nested up to 3,000 levels, a key duplicated, unicode spliced into the
text, or the whole file replaced by random bytes. `run` is the real command in-process;
its store is replaced by a stop sign, so a valid file ends there instead of starting Ray.
Run with --hypothesis-show-statistics for the outcome classes.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sweep.cli import app

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TEXT = (REPO / "sweep.yaml").read_text()
DEFAULT = yaml.safe_load(DEFAULT_TEXT)
EXAMPLES = 300  # issue 18 asks for at least 300 mutated files per CI run


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


PATHS = _paths(DEFAULT)


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


MAPPINGS = [()] + [p for p in PATHS if isinstance(_get(DEFAULT, p), dict)]

VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**32 - 1, 2**32, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=20),
    st.lists(st.one_of(st.integers(-5, 5), st.floats(), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=4)), max_size=2),
)
NEST_MARK = "__nest_here__"

MUTATIONS = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(PATHS), VALUES),
    st.tuples(st.just("delete"), st.sampled_from(PATHS)),
    st.tuples(
        st.just("unknown-key"), st.sampled_from(MAPPINGS), st.text(min_size=1, max_size=8), VALUES
    ),
    st.tuples(st.just("nest"), st.sampled_from(PATHS), st.integers(1, 3000)),
    st.tuples(st.just("duplicate-key"), st.integers(0, 10_000)),
    st.tuples(st.just("splice-text"), st.integers(0, 10_000), st.text(min_size=1, max_size=4)),
    st.tuples(st.just("random-bytes"), st.binary(max_size=300)),
)


def _render(mutations: list[tuple[Any, ...]]) -> bytes:
    """The default sweep.yaml with the mutations applied, as the bytes of a file."""
    import copy

    doc = copy.deepcopy(DEFAULT)
    nest_depth = 0
    for kind, *args in mutations:
        if kind in ("set", "delete", "nest"):
            try:
                parent = _get(doc, args[0][:-1])
                key = args[0][-1]
                if kind == "delete":
                    del parent[key]
                elif kind == "set":
                    parent[key] = args[1]
                else:
                    parent[key], nest_depth = NEST_MARK, args[1]
            except (KeyError, IndexError, TypeError):
                continue  # an earlier mutation removed or replaced that path
        elif kind == "unknown-key":
            try:
                target = _get(doc, args[0])
            except (KeyError, IndexError, TypeError):
                continue
            if isinstance(target, dict):
                target[args[1]] = args[2]
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if nest_depth:
        text = text.replace(NEST_MARK, "[" * nest_depth + "1" + "]" * nest_depth)
    for kind, *args in mutations:
        lines = text.splitlines(keepends=True)
        if kind == "duplicate-key":
            keyed = [
                i for i, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith("-")
            ]
            if keyed:
                i = keyed[args[0] % len(keyed)]
                lines.insert(i + 1, lines[i] if lines[i].endswith("\n") else lines[i] + "\n")
                text = "".join(lines)
        elif kind == "splice-text":
            at = args[0] % (len(text) + 1)
            text = text[:at] + args[1] + text[at:]
        elif kind == "random-bytes":
            return bytes(args[0])
    return text.encode("utf-8", errors="surrogatepass")


class _ReachedTheStore(Exception):
    """`sweep run` got past every check to the point where it opens the store."""


def _stop_at_the_store(*args: Any, **kwargs: Any) -> None:
    raise _ReachedTheStore


def _classify(output: str) -> str:
    text = output.lower()
    for needle, label in [
        ("not utf-8", "refused: encoding"),
        ("not allowed in yaml", "refused: control character"),
        ("duplicate key", "refused: duplicate key"),
        ("levels deep", "refused: nesting"),
        ("not valid yaml", "refused: yaml syntax"),
        ("not a finite number", "refused: nan/inf"),
        ("too large", "refused: huge integer"),
        ("got true", "refused: boolean as number"),
        ("got false", "refused: boolean as number"),
        ("unknown key", "refused: unknown key"),
        ("required; add it", "refused: missing key"),
        ("top level must be a mapping", "refused: not a mapping"),
    ]:
        if needle in text:
            return label
    return "refused: other field check"


@pytest.fixture(scope="module")
def stop_at_the_store():
    with mock.patch("sweep.study.Store", _stop_at_the_store):
        yield


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutations=st.lists(MUTATIONS, min_size=1, max_size=3))
def test_any_sweep_yaml_is_valid_or_one_clean_refusal(
    stop_at_the_store: None, mutations: list[tuple[Any, ...]]
) -> None:
    work = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        path = work / "sweep.yaml"
        path.write_bytes(_render(mutations))
        runner = CliRunner()
        checked = runner.invoke(app, ["validate", str(path)])
        ran = runner.invoke(app, ["run", str(path)])
        assert checked.exit_code in (0, 2), (checked.output, checked.exception)
        assert "Traceback" not in checked.output + ran.output
        if checked.exit_code == 0:
            event("valid: run reached the store")
            assert isinstance(ran.exception, _ReachedTheStore), (ran.output, ran.exception)
        else:
            event(_classify(checked.output))
            assert ran.exit_code == 2, (ran.output, ran.exception)
            assert ran.output == checked.output  # the same lines, word for word
            assert sorted(p.name for p in work.iterdir()) == ["sweep.yaml"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
