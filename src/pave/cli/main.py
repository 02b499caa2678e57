"""The ``pave`` command: one Typer app, one module per command group.

Every PaveError ends as two lines (the headline and the hint) and the exit code of its kind
(:mod:`pave.cli.console` lists them); the traceback appears only under ``pave --debug``. Shell
completion: ``pave --install-completion`` (bash, zsh, fish, PowerShell).
"""

from __future__ import annotations

import sys
from importlib import import_module

import typer
from rich.markup import escape

from pave import __version__
from pave.cli.console import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    err_console,
    exit_code,
    print_error,
    state,
)
from pave.errors import PaveError

app = typer.Typer(
    name="pave",
    help="Pave: the paved road from a notebook to a monitored production model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# (module, attribute, group name or None to merge its commands at the top level)
COMMAND_GROUPS: tuple[tuple[str, str, str | None], ...] = (
    ("pave.cli.platform", "app", None),
    ("pave.cli.config", "app", "config"),
    ("pave.cli.tokens", "app", "token"),
    ("pave.cli.projects", "app", None),
    ("pave.cli.golden", "app", None),
    ("pave.cli.ci", "app", None),
    ("pave.cli.notebook", "app", None),
    ("pave.cli.compute", "app", None),
    ("pave.cli.serving", "app", None),
    ("pave.cli.loop", "app", None),
    ("pave.cli.audit", "app", "audit"),
    ("pave.cli.members", "app", None),
    ("pave.cli.catalog", "app", "catalog"),
    ("pave.cli.monitor", "app", None),
    ("pave.cli.teams", "app", "team"),
    ("pave.cli.prompts", "app", "prompt"),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pave {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    state.debug = debug


for _module, _attr, _group in COMMAND_GROUPS:
    try:
        _sub = getattr(import_module(_module), _attr)
    except ModuleNotFoundError as _exc:  # a group whose optional dependencies are missing
        if _exc.name and _exc.name.startswith("pave."):
            raise
        continue
    if _group is None:
        app.registered_commands.extend(_sub.registered_commands)
        app.registered_groups.extend(_sub.registered_groups)
    else:
        app.add_typer(_sub, name=_group)


def _quiet_libraries() -> None:
    """Keep third-party chatter (MLflow's INFO lines, deprecation notices) off the user's screen."""
    import logging
    import os
    import warnings

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*deprecated.*")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("mlflow", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main() -> None:
    """Console-script entry point."""
    _quiet_libraries()
    try:
        # standalone_mode=False hands back a command's exit code instead of exiting with it
        code = app(prog_name="pave", standalone_mode=False)
    except PaveError as error:
        if state.debug:
            err_console.print_exception()
        print_error(error)
        sys.exit(exit_code(error))
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(EXIT_FAILED)
    except typer.TyperException as exc:  # usage errors: wrong option, bad value
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"error: {exc}", markup=False)
        sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
    except Exception as exc:  # a bug in Pave
        if state.debug:
            err_console.print_exception()
        err_console.print(f"[bold red]internal error:[/] {exc.__class__.__name__}: {escape(str(exc))}")
        err_console.print("[bold]hint:[/] run again with `pave --debug ...` and report the traceback")
        sys.exit(EXIT_INTERNAL)
    if isinstance(code, int) and code != 0:
        sys.exit(code)
