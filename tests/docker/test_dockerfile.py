"""docker/Dockerfile agrees with pyproject, constraints.txt, the dev environment and the code."""

from __future__ import annotations

import os
import re
import shlex
from importlib.metadata import version
from typing import Any

from cluster_files import DOCKER, REPO, SECRET_NAME, Dockerfile
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version


def requirement(pyproject: dict[str, Any], name: str) -> Requirement:
    reqs = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    return next(r for r in reqs if r.name == name)


def test_base_image_is_ray_at_the_version_the_driver_runs(
    dockerfile: Dockerfile, pyproject: dict[str, Any]
) -> None:
    # Ray refuses a driver whose Ray version differs from the cluster's.
    assert dockerfile.all("FROM") == ["rayproject/ray:${RAY_VERSION}-${PYTHON_TAG}-${DEVICE}"]
    ray_version = dockerfile.arg_defaults()["RAY_VERSION"]
    assert ray_version == version("ray"), "RAY_VERSION must equal the ray installed in .venv"
    assert requirement(pyproject, "ray").specifier.contains(ray_version)


def test_python_is_the_one_pyproject_targets(
    dockerfile: Dockerfile, pyproject: dict[str, Any]
) -> None:
    tag = dockerfile.arg_defaults()["PYTHON_TAG"]
    match = re.fullmatch(r"py3(\d+)", tag)
    assert match, tag
    minor = f"3.{match.group(1)}"
    assert SpecifierSet(pyproject["project"]["requires-python"]).contains(f"{minor}.0")
    assert pyproject["tool"]["ruff"]["target-version"] == tag
    assert pyproject["tool"]["mypy"]["python_version"] == minor


def test_gpu_by_default_with_a_cpu_build_argument(dockerfile: Dockerfile) -> None:
    args = dockerfile.arg_defaults()
    assert args["DEVICE"] == "gpu"
    torch_install = next(r for r in dockerfile.all("RUN") if "torch==${TORCH_VERSION}" in r)
    assert '"$DEVICE" = cpu' in torch_install and "whl/${variant}" in torch_install
    # The same CUDA wheel as the README's GPU install, where it names one.
    readme = (REPO / "README.md").read_text() if (REPO / "README.md").exists() else ""
    cuda = set(re.findall(r"download\.pytorch\.org/whl/(cu\d+)", readme))
    assert cuda <= {args["TORCH_CUDA"]}, f"README installs {cuda}, the image {args['TORCH_CUDA']}"


def test_torch_is_the_version_the_tests_run_on(
    dockerfile: Dockerfile, pyproject: dict[str, Any]
) -> None:
    pins = {
        Requirement(line).name: Requirement(line)
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    torch_version = dockerfile.arg_defaults()["TORCH_VERSION"]
    assert pins["torch"].specifier.contains(torch_version)
    assert requirement(pyproject, "torch").specifier.contains(torch_version)
    assert Version(version("torch")).base_version == torch_version


def test_dependencies_are_the_locked_versions(dockerfile: Dockerfile) -> None:
    install = next(r for r in dockerfile.all("RUN") if "/tmp/requirements.txt" in r)
    assert "requirements.lock" in copy_sources(dockerfile)
    assert "-c /tmp/lock.txt" in install and "grep -v '^torch==' requirements.lock" in install
    lock = (REPO / "requirements.lock").read_text()
    assert f"ray=={dockerfile.arg_defaults()['RAY_VERSION']}" in lock.splitlines()


def copy_sources(dockerfile: Dockerfile) -> list[str]:
    """Every build-context path that a COPY or ADD takes (flags and destination dropped)."""
    sources = []
    for args in dockerfile.all("COPY") + dockerfile.all("ADD"):
        sources += [t for t in shlex.split(args) if not t.startswith("--")][:-1]
    return sources


def test_runs_as_a_non_root_user_without_sudo(dockerfile: Dockerfile) -> None:
    steps = dockerfile.instructions
    users = [n for n, i in enumerate(steps) if i.keyword == "USER"]
    # Numeric and not 0: Kubernetes' runAsNonRoot can only verify a numeric user.
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", steps[users[-1]].args), "runs as root?"
    # The build itself proves that the runtime user cannot sudo.
    checks = [i for i in steps[users[-1] :] if i.keyword == "RUN" and "! sudo -n true" in i.args]
    assert checks, "no build step checks that sudo is gone"


def test_installs_the_project_with_pip(dockerfile: Dockerfile, pyproject: dict[str, Any]) -> None:
    copied = set(copy_sources(dockerfile))
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in (p.rstrip("*") for p in packages):
        assert package in copied, f"the image never copies the {package}/ package"
    assert {"pyproject.toml", "README.md"} <= copied  # README.md: pyproject's `readme`
    assert any(re.search(r"\bpip install\b.*\s\.(\s|$)", r) for r in dockerfile.all("RUN"))


def test_copies_only_files_that_exist_and_never_a_secret(dockerfile: Dockerfile) -> None:
    for source in copy_sources(dockerfile):
        assert source not in {".", "./"}, "COPY . would carry .env and local stores"
        assert ".env" not in source, f"COPY {source}: secrets come at run time"
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repo"
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert "**/.env" in ignored and ".venv" in ignored and ".git" in ignored


def test_bakes_in_no_secret_and_only_variables_that_are_read(
    dockerfile: Dockerfile, code_text: str
) -> None:
    names = [a.partition("=")[0] for a in dockerfile.all("ARG")] + list(dockerfile.env())
    assert not [n for n in names if SECRET_NAME.search(n)], names
    for name in dockerfile.env():
        if not name.startswith(("PIP_", "PYTHON")):  # read by pip and CPython
            assert f'"{name}"' in code_text, f"ENV {name}: no code reads it"
    assert dockerfile.env()["SWEEP_DATA_DIR"] == "/data"


def test_exposes_ray_and_dashboard_ports(dockerfile: Dockerfile) -> None:
    exposed = {int(p) for args in dockerfile.all("EXPOSE") for p in args.split()}
    assert exposed == {6379, 8265, 8080}  # Ray GCS, Ray dashboard, optuna-dashboard


def test_driver_helper_is_executable_and_joins_without_resources() -> None:
    script = DOCKER / "with-ray-node.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert '--address="$RAY_ADDRESS"' in text and "--num-cpus=0 --num-gpus=0" in text
    assert 'exec "$@"' in text
