"""``pave notebook``: JupyterLab on a project folder, already signed in to the platform."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import typer

from pave.cli.console import err_console
from pave.client import Client
from pave.errors import InvalidInput, MissingExtra

app = typer.Typer()


def notebook_env(client: Client) -> dict[str, str]:
    """What a notebook's kernel needs to reach the platform: MLflow's variables and Pave's."""
    return {
        "MLFLOW_TRACKING_URI": client.mlflow_tracking_uri,
        "MLFLOW_TRACKING_TOKEN": client.token,
        "PAVE_URL": client.url,
        "PAVE_TOKEN": client.token,
    }


@app.command("notebook", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def notebook(
    ctx: typer.Context,
    directory: Path = typer.Argument(Path("."), help="The folder JupyterLab opens (a project, usually)."),
    port: int = typer.Option(8888, "--port", help="JupyterLab's port (on 127.0.0.1)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open a browser."),
) -> None:
    """Start JupyterLab on DIR with MLFLOW_TRACKING_URI/TOKEN and PAVE_URL/TOKEN set.

    Options after `--` go to JupyterLab as they are (e.g. `pave notebook . -- --allow-root`).

    A notebook's `mlflow.start_run()` then logs to the platform, and `pave.Client()` finds it;
    the templates' `notebooks/explore.ipynb` loads the project's current data version.
    """
    if importlib.util.find_spec("jupyterlab") is None:
        raise MissingExtra("pave notebook", "notebook")
    if not directory.is_dir():
        raise InvalidInput(f"{directory} is not a folder", hint="pave notebook PROJECT_FOLDER")
    with Client() as client:
        client.whoami()  # a wrong token or an unreachable platform fails here, not in the notebook
        env = os.environ | notebook_env(client)
    err_console.print(f"JupyterLab on {directory.resolve()}, logging to {env['MLFLOW_TRACKING_URI']}")
    command = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={directory.resolve()}"]
    command += ["--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}"]
    if no_browser:
        command.append("--no-browser")
    command += ctx.args
    sys.stdout.flush()
    os.execve(sys.executable, command, env)  # noqa: S606 - JupyterLab takes this process's place
