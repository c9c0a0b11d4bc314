"""docker/README.md ("Run on a cluster") only names services, ports, variables, files and
`sweep` commands that exist."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cluster_files import (
    DOCKER,
    RAY_OWN_VARIABLES,
    REPO,
    SECRET_NAME,
    Dockerfile,
    as_argv,
    interpolate,
    required_variables,
    walk_strings,
)

README = DOCKER / "README.md"
SUBCOMMANDS = {"run", "status", "report", "dashboard", "db", "validate", "best", "export", "data"}
SLURM_SCRIPT = DOCKER / "slurm" / "babysweep.sbatch"


def shell_commands() -> Iterator[list[str]]:
    """Each simple command in the README's code blocks and inline code, as argv."""
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    for snippet in [*blocks, *inline]:
        for line in snippet.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line)  # shell comments
            for part in re.split(r"&&|\|\||[;|()]", line):
                try:
                    argv = shlex.split(part)
                except ValueError:
                    continue  # prose in backticks, not a command
                if argv:
                    yield argv


def compose_invocations() -> Iterator[tuple[str, list[str]]]:
    """(verb, args) of every `docker compose VERB ARGS`."""
    for argv in shell_commands():
        if argv[:2] == ["docker", "compose"] and len(argv) > 2:
            yield argv[2], argv[3:]


def sweep_invocations(compose: dict[str, Any], env: dict[str, str]) -> Iterator[list[str]]:
    """Every `sweep SUBCOMMAND ...`, plus `docker compose run sweep ARGS` as the argv it runs."""
    svc = compose["services"]["sweep"]
    entrypoint = [interpolate(a, env) for a in as_argv(svc["entrypoint"])][
        1:
    ]  # after with-ray-node
    for argv in shell_commands():
        for i, token in enumerate(argv):
            if token == "sweep" and i + 1 < len(argv) and argv[i + 1] in SUBCOMMANDS:
                yield argv[i:]
                break
        else:
            if argv[:3] == ["docker", "compose", "run"] and "sweep" in argv:
                yield entrypoint + argv[argv.index("sweep") + 1 :]


def test_names_only_services_that_exist(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    seen = set()
    for verb, args in compose_invocations():
        positional = [a for a in args if not a.startswith("-")]
        if verb in {"run", "exec", "logs"}:
            seen.add(positional[0])
        elif verb == "cp":
            seen |= {a.split(":")[0] for a in positional if ":" in a}
        if "--scale" in args:
            seen.add(args[args.index("--scale") + 1].split("=")[0])
    assert seen, "the README shows no docker compose command"
    assert seen <= services, seen - services


def test_every_sweep_command_parses_with_the_real_cli(
    compose: dict[str, Any],
    env_example: dict[str, str],
    check_sweep_argv: Callable[[list[str]], None],
) -> None:
    invocations = list(sweep_invocations(compose, env_example))
    assert {argv[1] for argv in invocations} >= {"run", "status", "report"}
    for argv in invocations:
        check_sweep_argv(argv)


def test_localhost_urls_are_published_ports(compose: dict[str, Any]) -> None:
    published = {
        int(spec.split(":")[1])
        for svc in compose["services"].values()
        for spec in svc.get("ports", [])
    }
    urls = {int(p) for p in re.findall(r"http://127\.0\.0\.1:(\d+)", README.read_text())}
    assert urls and urls <= published


def test_variables_are_in_env_example_or_read_by_the_code(
    env_example: dict[str, str], code_text: str
) -> None:
    names = set(
        re.findall(r"\b((?:SWEEP|POSTGRES|RAY|BABYSWEEP|COMPOSE)_[A-Z_]+)\b", README.read_text())
    )
    assert names
    allowed = RAY_OWN_VARIABLES | {"COMPOSE_FILE"}
    slurm = SLURM_SCRIPT.read_text()  # the Slurm section's variables are the script's inputs
    for name in names:
        in_slurm = f"${{{name}" in slurm or f"${name}" in slurm
        assert name in env_example or f'"{name}"' in code_text or name in allowed or in_slurm, name


def test_setup_generates_every_secret_compose_requires() -> None:
    secrets = {
        n
        for n in required_variables((DOCKER / "compose.yaml").read_text())
        if SECRET_NAME.search(n)
    }
    assert secrets >= {"POSTGRES_PASSWORD", "RAY_AUTH_TOKEN"}
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    (setup,) = [b for b in blocks if "cp .env.example .env" in b]
    for name in secrets:
        line = f'sed -i "s/^{name}=.*/{name}=$(openssl rand -hex '
        assert line in setup, f"the setup lines leave {name} empty"


def test_creates_every_secret_the_manifests_reference(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    """Each Secret a manifest names, with the key it reads, has its `kubectl create secret`."""
    wanted = set()
    for docs in manifests.values():
        for where, text in walk_strings(docs):
            if where.endswith(".secretKeyRef.name"):
                key = where.removesuffix(".name") + ".key"
                wanted.add((text, dict(walk_strings(docs))[key]))
            elif where.endswith(".authOptions.secretName"):
                wanted.add((text, "auth_token"))  # KubeRay's key for the Ray token
    assert {name for name, _ in wanted} >= {"babysweep-db", "babysweep-ray-token"}
    created = set(
        re.findall(
            r"^kubectl create secret generic ([\w.-]+) --from-literal=(\w+)=",
            README.read_text(),
            re.M,
        )
    )
    assert wanted <= created, wanted - created


@pytest.mark.parametrize(
    "path",
    sorted(
        set(re.findall(r"`(docker/[\w./-]+|[\w-]+\.ya?ml|\.env\.example)`", README.read_text()))
    ),
)
def test_files_it_names_exist(path: str) -> None:
    if path.endswith("/.env"):
        return  # made by the user from .env.example, never committed
    candidates = [REPO / path, DOCKER / path, DOCKER / "kuberay" / path]
    assert any(p.exists() for p in candidates), path


def test_versions_it_quotes_are_the_images(dockerfile: Dockerfile) -> None:
    text = README.read_text()
    args = dockerfile.arg_defaults()
    assert set(re.findall(r"Ray (\d+\.\d+\.\d+)", text)) == {args["RAY_VERSION"]}
    python = "3." + args["PYTHON_TAG"].removeprefix("py3")
    assert set(re.findall(r"Python (3\.\d+)", text)) == {python}
