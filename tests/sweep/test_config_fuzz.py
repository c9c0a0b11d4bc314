"""Property-based fuzzing of sweep.yaml (issue 18): whatever the file holds, `sweep validate`
and `sweep run` (up to the moment it opens the store) exit 0 or 2, never with a traceback,
agree with each other, and write nothing for an invalid file.

Each example mutates the default sweep.yaml 1 to 3 times: a value replaced (ints of any
size, NaN/inf, booleans, None, unicode text, lists, mappings), a key deleted, an unknown
key added, a value nested up to 3,000 levels, a key duplicated, unicode spliced into the
text, or the whole file replaced by random bytes; or one of the shapes `validate` once
passed and `run` hung or crashed on (issues 27 item 10, 28): search-space steps and log,
output_dir schemes and lengths, storage that keeps nothing, a Ray address where nothing
listens, resources beyond this machine, an alias cycle, an unusable cache_dir. `run` is the real command in-process;
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

TRIAL_STAGES = [
    name for name, stage in DEFAULT["stages"].items() if stage.get("kind", name) != "ensemble"
]
SEARCH_STAGES = [
    name
    for name, stage in DEFAULT["stages"].items()
    if stage.get("kind", name) in ("teachers", "students")
]
# issues 27 (item 10) and 28: shapes `validate` once passed and `run` hung or crashed on
SHAPES = st.one_of(
    st.tuples(  # a search space's grid: steps Optuna refuses, log with a step
        st.just("space"),
        st.sampled_from(SEARCH_STAGES),
        st.one_of(
            st.fixed_dictionaries(
                {
                    "dist": st.just("int"),
                    "low": st.integers(1, 3),
                    "high": st.integers(3, 6),
                    "step": st.integers(-2, 3),
                    "log": st.booleans(),
                }
            ),
            st.fixed_dictionaries(
                {
                    "dist": st.just("uniform"),
                    "low": st.just(0.0),
                    "high": st.just(0.1),
                    "step": st.one_of(st.just(0.0), st.floats(-0.1, 0.1, allow_nan=False)),
                }
            ),
        ),
    ),
    st.tuples(  # output_dir schemes and lengths
        st.just("top"),
        st.just("output_dir"),
        st.one_of(
            st.sampled_from(
                ["/proc/x", "/sys/x/y", "file:///proc/x", "nosuch://bucket/runs", "a:b://x"]
            ),
            st.integers(300, 100_000).map(lambda n: "/tmp/" + "a" * n),
            st.integers(300, 2_000).map(lambda n: "/tmp/" + "/".join(["abcdefgh"] * n)),
        ),
    ),
    st.tuples(  # storage URLs that keep nothing
        st.just("top"),
        st.just("storage"),
        st.sampled_from(["sqlite:///:memory:", "sqlite://", "sqlite:///file::memory:"]),
    ),
    st.tuples(  # addresses where nothing listens (run waits RAY_CONNECT_TIMEOUT_S for them)
        st.just("top"),
        st.just("ray_address"),
        st.sampled_from(["127.0.0.1:1", "127.0.0.1:9", "[::1]:1"]),
    ),
    st.tuples(  # resources beyond this machine's local Ray
        st.just("resources"),
        st.sampled_from(TRIAL_STAGES),
        st.fixed_dictionaries(
            {"cpu": st.sampled_from([64, 4096, 1.5, 1]), "gpu": st.sampled_from([0, 1, 0.25])}
        ),
    ),
    st.tuples(st.just("alias-cycle"), st.sampled_from(["[1, *c]", "{a: *c}", "[[*c]]"])),
    st.tuples(st.just("cache-dir"), st.sampled_from(["/proc/x", "/sys/x"])),
)

MUTATIONS = st.one_of(
    SHAPES,
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
        elif kind in ("space", "resources"):
            stage = doc.get("stages", {}).get(args[0]) if isinstance(doc, dict) else None
            if not isinstance(stage, dict):
                continue
            if kind == "space":
                stage.setdefault("space", {})
                if isinstance(stage["space"], dict):
                    stage["space"]["epochs" if args[1]["dist"] == "int" else "weight_decay"] = args[
                        1
                    ]
            else:
                stage["resources"] = args[1]
        elif kind == "top" and isinstance(doc, dict):
            doc[args[0]] = args[1]
        elif kind == "cache-dir" and isinstance(doc.get("data"), dict):
            doc["data"]["cache_dir"] = args[0]
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
        elif kind == "alias-cycle":
            text += f"cycle: &c {args[0]}\n"
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
        ("inside the value it names", "refused: alias cycle"),
        (".step:", "refused: search-space step"),
        ("output_dir:", "refused: output_dir"),
        ("in-memory", "refused: storage keeps nothing"),
        ("cache_dir:", "refused: cache_dir"),
    ]:
        if needle in text:
            return label
    return "refused: other field check"


@pytest.fixture(scope="module")
def stop_at_the_store():
    # a head where nothing listens is refused after this long (30 s by default)
    with (
        mock.patch("sweep.study.Store", _stop_at_the_store),
        mock.patch("sweep.ray_probe.RAY_CONNECT_TIMEOUT_S", 1.0),
    ):
        yield


# What `run` may refuse in a file `validate` accepts: what only the machine it runs on can
# tell (this machine's CPUs and GPUs for a local Ray, whether the Ray head answers); before
# anything is written, as validate's own refusals.
RUN_ONLY = {
    "resources.cpu:": "valid: run refused resources beyond the local Ray",
    "resources.gpu:": "valid: run refused resources beyond the local Ray",
    "ray_address: nothing answers": "valid: run refused an unreachable ray_address",
}


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
            label = next((v for k, v in RUN_ONLY.items() if k in ran.output), None)
            if label is None:
                event("valid: run reached the store")
                assert isinstance(ran.exception, _ReachedTheStore), (ran.output, ran.exception)
            else:
                event(label)
                assert ran.exit_code == 2, (ran.output, ran.exception)
                assert sorted(p.name for p in work.iterdir()) == ["sweep.yaml"]
        else:
            event(_classify(checked.output))
            assert ran.exit_code == 2, (ran.output, ran.exception)
            assert ran.output == checked.output  # the same lines, word for word
            assert sorted(p.name for p in work.iterdir()) == ["sweep.yaml"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
