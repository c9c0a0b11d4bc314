"""The package boundaries (DESIGN.md): trainers/ runs without the sweep's machinery, analysis/
without the training stack.

Checked twice: statically (every import statement in the package's source, including those
inside functions) and at run time (importing every module of the package in a fresh
interpreter loads none of the forbidden packages, even through a dependency).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    # trainers/ is the bottom layer: a recipe a researcher can run on its own.
    "trainers": {"ray", "sqlalchemy", "optuna", "alembic", "sweep", "analysis"},
    # analysis/ reads the store; it must not pull torch (GBs, seconds to import) or Ray.
    "analysis": {"torch", "ray", "transformers"},
}


def imported_roots(path: Path) -> dict[str, int]:
    """Top-level package name -> first line importing it, for every absolute import."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (  # importlib.import_module("x.y") with a literal name
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        for name in names:
            found.setdefault(name.split(".")[0], node.lineno)
    return found


def modules(package: str) -> list[str]:
    root = REPO / package
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_statement_crosses_the_boundary(package: str) -> None:
    crossings = []
    for path in sorted((REPO / package).rglob("*.py")):
        for root, line in imported_roots(path).items():
            if root in FORBIDDEN[package]:
                crossings.append(f"{path.relative_to(REPO)}:{line} imports {root}")
    assert not crossings, "\n".join(crossings)


def test_the_static_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import os\n"
        "def f():\n"
        "    from ray import tune\n"
        "    import sqlalchemy.orm\n"
        "    return importlib.import_module('optuna.trial')\n"
        "from . import sibling\n"
    )
    assert imported_roots(source) == {"os": 1, "ray": 3, "sqlalchemy": 4, "optuna": 5}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_every_module_loads_nothing_forbidden(package: str) -> None:
    names = modules(package)
    script = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = set(json.loads(proc.stdout.splitlines()[-1]))
    assert package in loaded and len(names) > 5
    assert not loaded & FORBIDDEN[package], f"{package} loads {sorted(loaded & FORBIDDEN[package])}"


def test_the_store_modules_import_each_other_without_a_cycle() -> None:
    """migrate.py is given an engine; it never reaches back into store.py (and so on)."""
    package = REPO / "sweep" / "store"
    graph: dict[str, set[str]] = {}
    for path in package.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                parts = node.module.split(".")
                if parts[:2] == ["sweep", "store"] and len(parts) == 3:
                    deps.add(parts[2])
        graph[path.stem] = deps - {path.stem}
    graph.pop("__init__")  # the public surface re-exports everything

    def cycle_from(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return [*trail[trail.index(node) :], node]
        for dep in sorted(graph.get(node, ())):
            found = cycle_from(dep, [*trail, node])
            if found:
                return found
        return None

    assert graph["migrate"] and "store" in graph and "migrate" in graph["store"]
    for start in sorted(graph):
        cycle = cycle_from(start, [])
        assert cycle is None, " -> ".join(cycle)
