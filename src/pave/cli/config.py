"""``pave config show``: the effective settings, secrets masked."""

from __future__ import annotations

import typer
from rich.table import Table

from pave.cli.console import console, print_json
from pave.config import Settings, config_file_path, load_settings

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective settings (env > config file > default); passwords are masked."""
    settings = load_settings()
    values = settings.shown()
    if as_json:
        print_json(values)
        return
    path = config_file_path()
    table = Table(title=f"Pave settings (config file: {path}{'' if path and path.exists() else ', absent'})")
    table.add_column("setting")
    table.add_column("env var")
    table.add_column("value")
    for key, value in values.items():
        table.add_row(key, f"PAVE_{key.upper()}", value)
    console.print(table)
    described = {k: f.description for k, f in Settings.model_fields.items() if f.description}
    if described:
        console.print(
            "[dim]`pave config show --json` for machine-readable output; docs/config.md lists them all[/]"
        )
