"""requirements.lock: complete for pyproject.toml, free of CUDA wheels, and what `make install` installs.

The lock is produced by `make lock` (uv pip compile); these tests say when it is stale (a
dependency added to pyproject.toml without relocking) and when an environment built by
`make install` holds anything but exactly the locked versions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# The installer itself: `make install` upgrades pip before installing the lock.
NOT_LOCKED = {"pip"}


def pins(lines: list[str]) -> dict[str, str]:
    """name -> version for every `name==version` line (comments, -e and options skipped)."""
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, _, version = line.partition("==")
            out[canonicalize_name(name.split("[")[0])] = version.strip()
    return out


def test_the_lock_pins_every_requirement_of_pyproject_and_its_extras() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in ("dev", "notebook", "tracking"):
        requirements += [Requirement(r) for r in project["optional-dependencies"][extra]]
    locked = pins(LOCK.read_text().splitlines())
    missing = [str(r) for r in requirements if canonicalize_name(r.name) not in locked]
    assert not missing, f"not in requirements.lock: {missing}; run `make lock`"
    for r in requirements:
        version = Version(locked[canonicalize_name(r.name)])
        assert r.specifier.contains(version, prereleases=True), f"{r} locked at {version}"


def test_the_lock_has_the_cpu_torch_and_no_cuda_wheels() -> None:
    locked = pins(LOCK.read_text().splitlines())
    cuda = sorted(n for n in locked if n.startswith("nvidia-") or n == "triton")
    assert not cuda, f"requirements.lock pulls CUDA packages: {cuda}"
    pinned = Requirement(
        next(
            line
            for line in (REPO / "constraints.txt").read_text().splitlines()
            if line.startswith("torch")
        )
    )
    assert pinned.specifier.contains(Version(locked["torch"])), locked["torch"]


def test_the_lock_pins_nothing_that_only_one_machines_wheel_folder_serves() -> None:
    """No local version label (`+cpu`): PyPI has none, so a fresh machine could not install it,
    unless the README's install names the index that serves it (issue 27)."""
    readme = (REPO / "README.md").read_text()
    labelled = {
        n: v
        for n, v in pins(LOCK.read_text().splitlines()).items()
        if Version(v).local and "download.pytorch.org" not in readme
    }
    assert not labelled, f"pins PyPI does not serve: {labelled}"


@pytest.mark.parametrize(
    ("uname", "index"), [("Linux", "https://download.pytorch.org/whl/cpu"), ("Darwin", None)]
)
def test_make_installs_torch_from_the_index_the_readme_names(
    uname: str, index: str | None, tmp_path: Path
) -> None:
    """On a machine without this one's wheel folder, `make install` takes torch from PyTorch's
    CPU index on Linux and from PyPI on macOS, and the README says so."""
    plan = subprocess.run(
        [
            "make",
            "-n",
            "install",
            f"VENV={tmp_path}/venv",
            f"UNAME={uname}",
            f"TORCH_WHEELS={tmp_path}/no-wheels",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    torch_step = next(line for line in plan.splitlines() if " torch" in line and "install" in line)
    if index:
        assert f"--extra-index-url {index}" in torch_step, torch_step
        assert index in (REPO / "README.md").read_text()
    else:
        assert "index" not in torch_step, torch_step
    assert plan.index(torch_step) < plan.index(f"-r {LOCK.name}"), "torch before the rest"


def test_make_install_installs_exactly_the_locked_versions() -> None:
    """`pip freeze` of the environment running the tests equals the lock (CI builds it fresh)."""
    # The stamp `make install` leaves once the environment holds the lock.
    if not IN_CI and not (Path(sys.prefix) / ".installed-from-lock").exists():
        pytest.skip(f"{sys.prefix} was not built by `make install` (CI always checks this)")
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    installed = {n: v for n, v in pins(freeze).items() if n not in NOT_LOCKED}
    locked = pins(LOCK.read_text().splitlines())
    extra = sorted(f"{n}=={v}" for n, v in installed.items() if n not in locked)
    missing = sorted(f"{n}=={v}" for n, v in locked.items() if n not in installed)
    wrong = sorted(
        f"{n}: {installed[n]} installed, {v} locked"
        for n, v in locked.items()
        # torch==2.13.0 locked is 2.13.0+cpu (Linux, PyTorch's CPU index) or 2.13.0 (macOS)
        if n in installed
        and Version(installed[n]) != Version(v)
        and not (Version(v).local is None and Version(installed[n]).public == v)
    )
    assert not (extra or missing or wrong), f"extra {extra}; missing {missing}; differ {wrong}"
