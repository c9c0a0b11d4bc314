"""Readers for docker/: the Dockerfile, compose files, .env files, interpolation.

Plain functions shared by the tests in this folder (conftest.py turns them into fixtures).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Services built from docker/Dockerfile (postgres is the stock image).
PROJECT_SERVICES = {"migrate", "ray-head", "ray-worker", "optuna-dashboard", "sweep"}
# Names that must never be build arguments or image variables, nor hold literals in manifests.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|CREDENTIAL|STORAGE_URL", re.IGNORECASE)
# Variables that Ray itself reads, allowed in containers although no babysweep code reads them
# (test_compose_file checks that the installed Ray does): token authentication, on in Ray 2.60.
RAY_OWN_VARIABLES = frozenset({"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"})
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class _ComposeLoader(yaml.SafeLoader):
    """SafeLoader that also reads Compose's merge tags (`!reset`, `!override`)."""


def _compose_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        value: Any = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return {f"!{suffix}": value}


_ComposeLoader.add_multi_constructor("!", _compose_tag)


def load_compose(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_ComposeLoader)


def interpolations(text: str) -> set[str]:
    """Names of the ${VAR} that a compose file interpolates ($$ escapes excluded)."""
    return {m.group(1) for m in _INTERPOLATION.finditer(text.replace("$$", ""))}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose-style interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error} (errors -> 'x')."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op in (":-", "-"):
            return arg
        return "x" if op in (":?", "?") else ""

    return _INTERPOLATION.sub(one, value)


def required_variables(text: str) -> set[str]:
    """Names that a compose file requires with ${VAR:?error} (compose refuses to run without)."""
    found = _INTERPOLATION.finditer(text.replace("$$", ""))
    return {m.group(1) for m in found if m.group(2) in (":?", "?")}


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; comments and blank lines skipped."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            env[key.strip()] = value.strip()
    return env


def walk_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (path, string value) in a parsed YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk_strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def as_argv(command: str | list[str] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Dockerfile:
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def arg_defaults(self) -> dict[str, str]:
        defaults: dict[str, str] = {}
        for args in self.all("ARG"):
            name, sep, default = args.partition("=")
            if sep:
                defaults.setdefault(name, default.strip('"'))
        return defaults

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
        return env


def parse_dockerfile(text: str) -> Dockerfile:
    """Instructions with continuation lines joined and comments dropped."""
    instructions, buffer = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buffer):
            continue  # comments may sit inside a continued instruction too
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        buffer = ""
    return Dockerfile(instructions)
