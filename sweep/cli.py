"""The `sweep` command line: validate, run, status, report, dashboard, db upgrade.

Every user-causable error (bad yaml, missing data, unreachable database) prints one
message naming the field or path, exits 2, and shows no traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from sweep.errors import SweepError
from trainers.errors import TrainerError

app = typer.Typer(
    help="babysweep: hyperparameter sweeps for ensemble-distillation pretraining "
    "(BabyLlama-2) on Ray Tune + Optuna, recorded in one SQL store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Manage the store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_YAML = Path("sweep.yaml")

ConfigArg = Annotated[Path, typer.Argument(help="The sweep.yaml to use.", show_default=True)]
StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", help="Store URL; overrides sweep.yaml and $SWEEP_STORAGE_URL."),
]


def user_errors(func: F) -> F:
    """Turn user-causable errors into one message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (SweepError, TrainerError) as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@user_errors
def validate(config: ConfigArg = DEFAULT_YAML) -> None:
    """Check sweep.yaml and print the resolved config (paths, storage, defaults filled in)."""
    import yaml
    from sqlalchemy.engine import make_url

    from sweep.config import load_sweep_config

    cfg = load_sweep_config(config)
    resolved = cfg.resolved_json()
    resolved["storage"] = make_url(cfg.storage or "").render_as_string(hide_password=True)
    console.print(f"# {config}: valid (config hash {cfg.config_hash()[:12]})", highlight=False)
    console.print(yaml.safe_dump(resolved, sort_keys=False), highlight=False, markup=False)


@app.command()
@user_errors
def run(
    config: ConfigArg = DEFAULT_YAML,
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address; default: a local Ray.")
    ] = None,
    storage: StorageOpt = None,
    stage: Annotated[
        str | None,
        typer.Option("--stage", help="Run one stage alone (teachers, ensemble, students, ...)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted sweep of the same name.")
    ] = False,
    output_dir: Annotated[
        str | None,
        typer.Option("--output-dir", help="Checkpoint path or URI (shared on clusters)."),
    ] = None,
) -> None:
    """Run the staged study: teachers, ensemble, students, baselines, repeats."""
    _not_built("run", 6)


@app.command()
@user_errors
def status(
    config: Annotated[Path | None, typer.Argument(help="sweep.yaml (or use --storage).")] = None,
    storage: StorageOpt = None,
    sweep_name: Annotated[
        str | None, typer.Option("--sweep", help="Sweep name in the store.")
    ] = None,
) -> None:
    """Print each stage's trial counts and best trial, from the store alone."""
    _not_built("status", 4)


@app.command()
@user_errors
def report(
    config: Annotated[Path | None, typer.Argument(help="sweep.yaml (or use --storage).")] = None,
    storage: StorageOpt = None,
    sweep_name: Annotated[
        str | None, typer.Option("--sweep", help="Sweep name in the store.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
) -> None:
    """Write the robustness report (one self-contained HTML file) from the store."""
    _not_built("report", 7)


@app.command()
@user_errors
def dashboard(
    config: Annotated[Path | None, typer.Argument(help="sweep.yaml (or use --storage).")] = None,
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
) -> None:
    """Start optuna-dashboard on the store's Optuna studies."""
    _not_built("dashboard", 6)


@db_app.command("upgrade")
@user_errors
def db_upgrade(
    url: Annotated[str | None, typer.Argument(help="Store URL; default: from sweep.yaml.")] = None,
    config: Annotated[Path, typer.Option("--config", help="sweep.yaml to read the URL from.")] = (
        DEFAULT_YAML
    ),
) -> None:
    """Migrate the store's schema to this version of babysweep."""
    _not_built("db upgrade", 4)


def _not_built(command: str, issue: int) -> None:
    err_console.print(f"`sweep {command}` is not built yet (issue {issue}); nothing was run.")
    raise typer.Exit(2)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
