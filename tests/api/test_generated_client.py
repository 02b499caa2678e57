"""A client generated with openapi-python-client from the live server's OpenAPI document
type-checks with mypy and talks to the server: the document is one a code generator can use."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

from pave_testing import PaveServer

REPO = Path(__file__).resolve().parents[2]
PINS = REPO / "requirements" / "openapi-client.txt"
TOOL = REPO / ".venv" / "tools" / "openapi-python-client"
PACKAGE = "pave_api_client"


def _generator() -> Path:
    """openapi-python-client in a venv of its own (it caps typer below Pave's), installed once."""
    exe = TOOL / "bin" / "openapi-python-client"
    stamp = TOOL / "pins.txt"
    if exe.exists() and stamp.exists() and stamp.read_text() == PINS.read_text():
        return exe
    venv.create(TOOL, with_pip=True, clear=True)
    subprocess.run([str(TOOL / "bin" / "pip"), "install", "-q", "-r", str(PINS)], check=True)
    stamp.write_text(PINS.read_text())
    return exe


@pytest.fixture(scope="module")
def generated(shared_server: PaveServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("generated")
    with shared_server.client() as admin:
        response = admin.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = folder / "openapi.json"
    spec.write_bytes(response.content)
    out = folder / PACKAGE  # with --meta none, the package itself
    done = subprocess.run(
        [
            str(_generator()),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(out),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "PATH": f"{TOOL / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"},  # its ruff
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # the generator names what it could not express; a document that generates cleanly has none
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    return out


# The generator's fixed boilerplate (client.py: its context managers pass ``*args: object`` on to
# httpx's ``__exit__``) fails ``arg-type`` whatever the document says; everything generated from
# Pave's document (every model and endpoint module) is held to --strict.
MYPY_CONFIG = f"""[mypy]
strict = True

[mypy-{PACKAGE}.client]
disable_error_code = arg-type
"""


def test_the_generated_client_type_checks(generated: Path) -> None:
    config = generated.parent / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-incremental", "-p", PACKAGE],
        capture_output=True,
        text=True,
        cwd=generated.parent,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _module(generated: Path, name: str) -> Any:
    sys.path.insert(0, str(generated.parent))
    try:
        return importlib.import_module(f"{PACKAGE}.{name}")
    finally:
        sys.path.remove(str(generated.parent))


def test_the_generated_client_calls_the_live_server(generated: Path, shared_server: PaveServer) -> None:
    client_module = _module(generated, "client")
    whoami = _module(generated, "api.identity.whoami")
    list_projects = _module(generated, "api.projects.list_projects")
    create_project = _module(generated, "api.projects.create_project")
    models = _module(generated, "models")

    client = client_module.AuthenticatedClient(base_url=shared_server.url, token=shared_server.token)
    me = whoami.sync(client=client)
    assert isinstance(me, models.Whoami)
    assert me.is_admin is True

    made = create_project.sync(client=client, body=models.ProjectCreate(name="generated-client"))
    assert isinstance(made, models.ProjectOut)
    assert made.name == "generated-client"
    assert "generated-client" in [p.name for p in list_projects.sync(client=client) or []]

    refused = create_project.sync_detailed(client=client, body=models.ProjectCreate(name="Not A Slug"))
    assert refused.status_code == 400
    assert isinstance(refused.parsed, models.ErrorResponse)
    assert refused.parsed.error.code == "invalid_input"

    anonymous = client_module.Client(base_url=shared_server.url)
    denied = whoami.sync_detailed(client=anonymous)
    assert denied.status_code == 401
    assert isinstance(denied.parsed, models.ErrorResponse)
