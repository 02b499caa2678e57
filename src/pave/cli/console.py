"""What every ``pave`` command shares: the consoles, exit codes, ``--json`` and tables.

The conventions (docs/cli.md lists them for users; a new command follows them too):

- **Exit codes.** 0 done; 1 failed, and the hint says how to fix it (bad input, not found, a
  conflict, a failed run); 2 a usage error (unknown option, missing argument); 3 a promotion gate
  failed (the run itself succeeded); 4 refused (no token, a wrong one, no permission, a quota used
  up); 5 the platform is unreachable or not ready; 70 a bug in Pave; 130 interrupted. ``main``
  maps every :class:`PaveError` through :func:`exit_code`; a command that ends on a failed gate
  raises ``typer.Exit(EXIT_GATES)``.
- **--json.** Every command that lists or shows something takes ``as_json: bool = JSON`` and ends
  with ``emit(data, render)``: the API's JSON on stdout with ``--json``, ``render(data)`` (a table
  or text) otherwise. Progress and notes go to ``err_console`` so stdout stays parseable.
- **Tables.** ``table(title, *columns)``; when stdout is not a terminal (a pipe, a file) the
  console is as wide as the content, so nothing is cut or wrapped at 80 columns.
- **Messages.** Text from outside (an error's message, a name, a hint such as
  ``pip install 'pave[ray]'``) goes through :func:`rich.markup.escape`, or is printed with
  ``markup=False``, so square brackets survive.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pave.errors import (
    Forbidden,
    InternalError,
    PaveError,
    QuotaExceeded,
    Unauthenticated,
    Unavailable,
    UserError,
)
from pave.schemas.common import Wire

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATES = 3
EXIT_REFUSED = 4
EXIT_UNREACHABLE = 5
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

# Wide enough for any table Pave prints; a table is only as wide as its content needs.
_PIPE_WIDTH = 10_000


def _width(stream: Any) -> int | None:
    """None (rich measures the terminal) on a terminal or with COLUMNS set; very wide otherwise."""
    if os.environ.get("COLUMNS"):
        return None
    try:
        if stream.isatty():
            return None
    except (AttributeError, ValueError):
        pass
    return _PIPE_WIDTH


console = Console(highlight=False, width=_width(sys.stdout))
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class _State:
    debug: bool = False


state = _State()

JSON = typer.Option(False, "--json", help="Print JSON (the API's shape) instead of a table.")

T = TypeVar("T")


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout (no colour codes when piped)."""
    import orjson

    text = orjson.dumps(data, default=_default, option=orjson.OPT_INDENT_2).decode()
    if console.is_terminal:
        console.print_json(text)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _default(value: Any) -> Any:
    if isinstance(value, Wire):  # an API answer: exactly the fields the server sent
        return value.model_dump(mode="json", exclude_unset=True)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return str(value)


def emit(data: T, render: Callable[[T], None], *, as_json: bool) -> None:
    """The one ending of a list or show command: JSON with ``--json``, ``render(data)`` otherwise."""
    if as_json:
        print_json(data)
    else:
        render(data)


def table(title: str | None, *columns: str) -> Table:
    """A table with these column headers."""
    result = Table(title=title)
    for column in columns:
        result.add_column(column)
    return result


def exit_code(error: PaveError) -> int:
    """The exit code a PaveError ends the command with (see the module docstring)."""
    if isinstance(error, Unauthenticated | Forbidden | QuotaExceeded):
        return EXIT_REFUSED
    if isinstance(error, Unavailable):
        return EXIT_UNREACHABLE
    if isinstance(error, UserError):
        return EXIT_FAILED
    if isinstance(error, InternalError):
        return EXIT_INTERNAL
    return EXIT_FAILED


def print_error(error: PaveError) -> None:
    """The headline and the hint on stderr, brackets kept (``pip install 'pave[ray]'``)."""
    err_console.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False)
    if error.hint:
        err_console.print(f"[bold]hint:[/] {escape(error.hint)}", highlight=False)
