"""The `sweep` command line: validate, run, status, report, dashboard, db upgrade.

Every user-causable error (bad yaml, missing data, unreachable database) prints one
message naming the field or path, exits 2, and shows no traceback.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import signal
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
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Manage the store's schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
data_app = typer.Typer(
    help="Check a data root, or lay out a BabyLM release (docs/DATA.md).", no_args_is_help=True
)
app.add_typer(data_app, name="data")

# soft_wrap: piped into a log, rich would break every long line at 80 columns
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_YAML = Path("sweep.yaml")

ConfigArg = Annotated[Path, typer.Argument(help="The sweep.yaml to use.", show_default=True)]
StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", help="Store URL; overrides sweep.yaml and $SWEEP_STORAGE_URL."),
]
AddressOpt = Annotated[
    str | None, typer.Option("--address", help="Ray cluster address; default: a local Ray.")
]
OutputDirOpt = Annotated[
    str | None,
    typer.Option("--output-dir", help="Checkpoint path or URI (shared on clusters)."),
]


def _flags_take_no_value() -> None:
    """typer 0.2x labels every bool flag `<bool>` in --help, as if it took a value; it doesn't."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_flags_take_no_value", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._flags_take_no_value = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()


def _print_version(value: bool) -> None:
    if value:
        from sweep.study import code_version

        console.print(f"babysweep {code_version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """babysweep: hyperparameter sweeps for ensemble-distillation pretraining (BabyLlama-2)
    on Ray Tune + Optuna, recorded in one SQL store."""


def user_errors(func: F) -> F:
    """Turn user-causable errors into one message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (SweepError, TrainerError) as exc:
            print_error(exc)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def print_error(exc: BaseException) -> None:
    """`error: <message>`, one line per problem, never wrapped: piped into a log or grep,
    rich would otherwise break lines at 80 columns."""
    from rich.text import Text

    lines = str(exc).splitlines() or [type(exc).__name__]
    err_console.print(Text("error: ", style="bold red") + Text(lines[0]), soft_wrap=True)
    for line in lines[1:]:
        err_console.print(Text(line), soft_wrap=True)


@app.command()
@user_errors
def validate(
    config: ConfigArg = DEFAULT_YAML,
    address: AddressOpt = None,
    storage: StorageOpt = None,
    output_dir: OutputDirOpt = None,
) -> None:
    """Check sweep.yaml as `sweep run` will (data splits, evaluation data, storage URL, Ray
    address, output dir) and print the resolved config; every problem is one line."""
    import yaml

    from sweep.config import load_sweep_config
    from sweep.store import mask_url

    cfg = load_sweep_config(config, storage=storage, ray_address=address, output_dir=output_dir)
    resolved = cfg.resolved_json()
    resolved["storage"] = mask_url(cfg.storage or "")
    console.print(f"# {config}: valid (config hash {cfg.config_hash()[:12]})", highlight=False)
    from sweep.cluster_fit import local_resource_problems

    for line in local_resource_problems(cfg):  # a cluster may have it; this machine has not
        err_console.print(f"warning: {line}", highlight=False, markup=False, soft_wrap=True)
    console.print(yaml.safe_dump(resolved, sort_keys=False), highlight=False, markup=False)
    from sweep.preflight import summary_lines, warnings

    for line in summary_lines(cfg):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    for line in warnings(cfg):  # valid, but not runnable here as it stands: said, not refused
        console.print(f"warning: {line}", highlight=False, markup=False, soft_wrap=True)


@app.command()
@user_errors
def run(
    config: ConfigArg = DEFAULT_YAML,
    address: AddressOpt = None,
    storage: StorageOpt = None,
    stage: Annotated[
        str | None,
        typer.Option("--stage", help="Run one declared stage alone (its name in sweep.yaml)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted sweep of the same name.")
    ] = False,
    rerun: Annotated[
        bool,
        typer.Option("--rerun", help="With --stage: discard that (last) stage's trials and rerun."),
    ] = False,
    output_dir: OutputDirOpt = None,
    lease_timeout: Annotated[
        float,
        typer.Option(
            "--lease-timeout",
            envvar="SWEEP_LEASE_TIMEOUT_S",
            help="Seconds without a heartbeat after which another driver's lease on this "
            "sweep may be taken over (at once when it ran on this host and is gone).",
        ),
    ] = 30.0,
) -> None:
    """Run the study: the stages sweep.yaml declares, in order (a finished one grows).

    One driver per sweep: a second `sweep run` of the same sweep is refused while the
    first one is alive."""
    from sweep.config import load_sweep_config

    # the same checks as `sweep validate`, before anything is written
    cfg = load_sweep_config(config, storage=storage, ray_address=address, output_dir=output_dir)
    from sweep.study import run_study

    result = run_study(
        cfg,
        stage=stage,
        resume=resume,
        rerun=rerun,
        console=err_console,
        lease_timeout_s=lease_timeout,
    )
    for name in result.skipped:
        console.print(f"stage {name}: already complete in the store; not re-run (see --rerun)")
    _print_next_steps(config, cfg.storage or "", cfg.name)


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
    from sweep.store import Store, render_status

    url, name = _store_target(config, storage, sweep_name)
    store = Store(url, upgrade=False)
    # Piped into a file or a log, rich would squeeze the table into 80 columns.
    out = console if console.is_terminal else Console(width=160)
    try:
        out.print(render_status(store, name, width=out.width))
    finally:
        store.dispose()


class ReportFormat(enum.StrEnum):
    html = "html"
    markdown = "markdown"
    latex = "latex"


@app.command()
@user_errors
def report(
    config: Annotated[Path | None, typer.Argument(help="sweep.yaml (or use --storage).")] = None,
    storage: StorageOpt = None,
    sweep_name: Annotated[
        str | None, typer.Option("--sweep", help="Sweep name in the store.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default report.html/.md/.tex).")
    ] = None,
    fmt: Annotated[
        ReportFormat,
        typer.Option("--format", help="html: the report; markdown, latex: tables for a paper."),
    ] = ReportFormat.html,
) -> None:
    """Write the robustness report (one self-contained HTML file), or its headline and verdict
    tables as markdown or LaTeX (booktabs), from the store."""
    from analysis import write_report
    from analysis.report import write_tables

    url, name = _store_target(config, storage, sweep_name)
    out = out or Path("report." + {"html": "html", "markdown": "md", "latex": "tex"}[fmt.value])
    if fmt is ReportFormat.html:
        path = write_report(url, out, sweep=name)
    else:
        path = write_tables(
            url, out, fmt="latex" if fmt is ReportFormat.latex else "markdown", sweep=name
        )
    console.print(f"report: {path.resolve()}", highlight=False)


@app.command()
@user_errors
def dashboard(
    config: Annotated[Path | None, typer.Argument(help="sweep.yaml (or use --storage).")] = None,
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
) -> None:
    """Start optuna-dashboard on the store's Optuna studies."""
    from optuna_dashboard import run_server

    from sweep.store import Store, mask_url

    url, _ = _store_target(config, storage, None)
    Store(url, upgrade=False).dispose()  # one clear error if the store is unreachable
    _check_port_free(host, port)
    console.print(f"optuna-dashboard on {mask_url(url)}: http://{host}:{port}", highlight=False)
    # SIGTERM (systemd, docker stop, kill) stops it as Ctrl-C does: cleanly, exit 0
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # bottle catches a KeyboardInterrupt while serving; this is one arriving outside it
    with contextlib.suppress(KeyboardInterrupt):
        run_server(url, host=host, port=port)
    console.print("dashboard stopped", highlight=False)


@app.command()
@user_errors
def best(
    config: Annotated[Path | None, typer.Argument(help="sweep.yaml (or use --storage).")] = None,
    storage: StorageOpt = None,
    sweep_name: Annotated[
        str | None, typer.Option("--sweep", help="Sweep name in the store.")
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option("--stage", help="Only this stage's trials (default: every students stage)."),
    ] = None,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Metric to rank by: dev_loss, test_loss, blimp_overall, ... "
            "(BLiMP, accuracy and F1 are maximised, the rest minimised).",
        ),
    ] = "dev_loss",
) -> None:
    """Print the best finished trial: params, metrics, BLiMP by group and its checkpoint."""
    from sweep.export import find_trial, render_trial

    url, name = _store_target(config, storage, sweep_name)
    card = find_trial(url, name, stage=stage, by=by)
    console.print(render_trial(card), highlight=False, markup=False, soft_wrap=True)
    where = str(config) if config is not None else f"--storage '{_masked(url)}'"
    console.print(
        f"  export:     sweep export {where} --trial {card.trial_id} --out DIR",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command()
@user_errors
def export(
    config: Annotated[Path | None, typer.Argument(help="sweep.yaml (or use --storage).")] = None,
    out: Annotated[Path, typer.Option("--out", help="New (or empty) folder for the model.")] = Path(
        "exported-model"
    ),
    trial: Annotated[
        str | None,
        typer.Option(
            "--trial",
            help="The store trial id that `sweep best` prints (e.g. 12), or STAGE/NUMBER: the "
            "stage and the trial's Optuna number in it, the #NUMBER `sweep status` shows "
            "(e.g. students/3). Default: the best trial by --by.",
        ),
    ] = None,
    storage: StorageOpt = None,
    sweep_name: Annotated[
        str | None, typer.Option("--sweep", help="Sweep name in the store.")
    ] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Without --trial: best of this stage.")
    ] = None,
    by: Annotated[
        str, typer.Option("--by", help="Without --trial: the metric to rank by.")
    ] = "dev_loss",
) -> None:
    """Copy a trial's Hugging Face checkpoint to --out with a model card (README.md).

    The folder loads with AutoModelForCausalLM.from_pretrained(DIR) and lm-eval's hf model.
    """
    from sweep.export import export_trial, find_trial

    url, name = _store_target(config, storage, sweep_name)
    card = find_trial(url, name, trial=trial, stage=stage, by=by)
    path = export_trial(card, out, store_url=url)
    console.print(
        f"exported trial {card.trial_id} ({card.label}) to {path.resolve()}", highlight=False
    )


def _check_port_free(host: str, port: int) -> None:
    """One line naming the port, rather than the web server's traceback."""
    import errno
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        # as the web server does: a closed server's TIME_WAIT does not count, a listener does
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SweepError(
                    f"--port: port {port} on {host} is in use; pick a free one with --port N"
                ) from None
            raise SweepError(f"--host: cannot listen on {host}:{port} ({exc.strerror})") from None


@db_app.command("upgrade")
@user_errors
def db_upgrade(
    url: Annotated[str | None, typer.Argument(help="Store URL; default: from sweep.yaml.")] = None,
    config: Annotated[Path, typer.Option("--config", help="sweep.yaml to read the URL from.")] = (
        DEFAULT_YAML
    ),
) -> None:
    """Migrate the store's schema to this version of babysweep."""
    from sweep.store import mask_url, upgrade

    target = url or _store_target(config, None, None)[0]
    before, after = upgrade(target)
    console.print(f"{mask_url(target)}: schema {before or 'empty'} -> {after}", highlight=False)


@data_app.command("check")
@user_errors
def data_check(
    root: Annotated[
        Path, typer.Argument(help="Data root (corpora, blimp/, glue/) or one corpus folder.")
    ],
) -> None:
    """Check corpora (splits present and non-empty, words per split), BLiMP's 67 paradigms
    and the GLUE files; one line per problem, exit 2 if there is any."""
    from sweep.datasets import check_data_root

    report = check_data_root(root)
    for line in report.lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    for problem in report.problems:
        err_console.print(f"[bold red]problem:[/] {problem}", highlight=False, soft_wrap=True)
    if report.problems:
        raise typer.Exit(2)
    console.print(f"{root}: ok", highlight=False)


@data_app.command("prepare")
@user_errors
def data_prepare(
    source: Annotated[
        Path,
        typer.Argument(
            help="The unpacked BabyLM release (train_10M/, dev/, test/), or a corpus (train/, dev/, test/)."
        ),
    ],
    target: Annotated[Path, typer.Argument(help="New corpus folder, e.g. DATA/babylm-10m.")],
    size: Annotated[
        str, typer.Option("--size", help="Training set of the release: 10M or 100M.")
    ] = "10M",
    clean: Annotated[
        bool,
        typer.Option(
            "--clean",
            help="Clean each file by its source as BabyLlama-2 does (its mrclean step).",
        ),
    ] = False,
) -> None:
    """Copy a BabyLM release into the layout the trainers read: TARGET/{train,dev,test}/."""
    from sweep.datasets import prepare_babylm
    from trainers.cleaning import uncleaned_sources

    words = prepare_babylm(source, target, size=size, clean=clean)
    if clean:
        sources = [p.stem for p in (target / "train").iterdir()]
        left = uncleaned_sources(sources)
        note = f" ({', '.join(left)}: no reference cleaner, left as is)" if left else ""
        console.print(f"cleaned as BabyLlama-2's mrclean step{note}", highlight=False)
    shown = ", ".join(f"{split} {n:,} words" for split, n in words.items())
    console.print(f"{target}: {shown}", highlight=False)
    console.print(
        f"use it with data.root: {target.resolve().parent} and data.corpus: {target.name}",
        highlight=False,
        soft_wrap=True,
    )


@data_app.command("prepare-eval")
@user_errors
def data_prepare_eval(
    source: Annotated[
        Path, typer.Argument(help="Folder of the GLUE/SuperGLUE/BabyLM evaluation downloads.")
    ],
    root: Annotated[Path, typer.Argument(help="The data root (glue/ and the suites go there).")],
) -> None:
    """Copy the (Super)GLUE task folders and BabyLM's zero-shot suites found under SOURCE
    into ROOT/glue/<Task>/ and ROOT/<suite>/ (docs/DATA.md); existing folders stay."""
    from sweep.datasets import prepare_evaluation

    for line in prepare_evaluation(source, root):
        console.print(line, highlight=False, soft_wrap=True)


def _store_target(
    config: Path | None, storage: str | None, sweep_name: str | None
) -> tuple[str, str | None]:
    """The store URL and sweep name: --storage, else the yaml, else $SWEEP_STORAGE_URL."""
    import os

    from sweep.config import STORAGE_ENV, load_sweep_config

    if storage is not None and config is None:
        return storage, sweep_name
    if config is None and not DEFAULT_YAML.is_file():
        if os.environ.get(STORAGE_ENV):
            return os.environ[STORAGE_ENV], sweep_name
        raise SweepError(
            f"no ./{DEFAULT_YAML} here; pass a sweep.yaml, --storage URL, or set {STORAGE_ENV}"
        )
    cfg = load_sweep_config(config or DEFAULT_YAML, storage=storage)
    return cfg.storage or "", sweep_name or cfg.name


def _masked(url: str) -> str:
    from sweep.store import mask_url

    return mask_url(url)


def _print_next_steps(config: Path, url: str, name: str) -> None:
    from sweep.store import mask_url

    console.print(f"store: {mask_url(url)}", highlight=False)
    console.print(f"  status:    sweep status {config}", highlight=False)
    console.print(
        f"  dashboard: sweep dashboard {config}   (or: optuna-dashboard '{mask_url(url)}')",
        highlight=False,
    )
    console.print(f"  report:    sweep report {config} --out report.html", highlight=False)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
