"""Unmodified MLflow code works against `pave up`, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pave_testing import PaveServer, World

EXAMPLE = Path(__file__).parents[2] / "examples" / "mlflow_quickstart.py"
pytestmark = pytest.mark.slow


def _run_client(server: PaveServer, workdir: Path, model: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PAVE_"))}
    env |= {"MLFLOW_TRACKING_URI": f"{server.url}/mlflow", "MLFLOW_TRACKING_TOKEN": server.token}
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), model],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _check(server: PaveServer, workdir: Path, model: str) -> None:
    stdout = _run_client(server, workdir, model)
    assert "predictions=" in stdout
    # The artifacts went through the server into the platform's artifact root...
    assert list((server.home / "artifacts").rglob("MLmodel")), "model stored under PAVE_HOME/artifacts"
    # ...and nothing landed in the client's working directory.
    assert not any(p.name in ("mlruns", "mlartifacts") for p in workdir.iterdir())
    with server.client() as admin:
        alias = admin.get(
            "/mlflow/api/2.0/mlflow/registered-models/alias", params={"name": model, "alias": "champion"}
        )
        assert alias.status_code == 200, alias.text
        assert alias.json()["model_version"]["version"] == "1"


def test_mlflow_client_against_sqlite(shared_server: PaveServer, tmp_path: Path) -> None:
    _check(shared_server, tmp_path, "quickstart-sqlite")


@pytest.mark.postgres
def test_mlflow_client_against_postgres(
    pave_server_factory: Callable[..., PaveServer], postgres_url: str, tmp_path: Path
) -> None:
    server = pave_server_factory(postgres_url)
    _check(server, tmp_path, "quickstart-postgres")
    assert not (server.home / "pave.db").exists(), "the metadata lives in PostgreSQL"


def test_mlflow_client_without_token_is_refused(shared_server: PaveServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PAVE_"))}
    env |= {"MLFLOW_TRACKING_URI": f"{shared_server.url}/mlflow", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "never-registered"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    assert "this request needs a token" in out.stderr
    assert httpx.get(f"{shared_server.url}/healthz").status_code == 200


def test_an_mlflow_client_is_told_why_in_mlflows_own_error_codes(world: World) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import RestException

    url = f"{world.server.url}/mlflow"
    world.project("mlflow-codes")
    outsider = world.token("mlflow-outsider", role="developer")
    cases = [("pave_not_a_token", "UNAUTHENTICATED", "the token is not valid")]
    cases.append((outsider, "PERMISSION_DENIED", "mlflow-codes"))
    for token, code, words in cases:
        with mlflow_token(token), pytest.raises(RestException) as info:
            MlflowClient(url).create_experiment("mlflow-codes")
        assert info.value.error_code == code, info.value
        assert words in info.value.message
        assert "hint:" in info.value.message


@contextlib.contextmanager
def mlflow_token(token: str) -> Iterator[None]:
    before = os.environ.get("MLFLOW_TRACKING_TOKEN")
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
        else:
            os.environ["MLFLOW_TRACKING_TOKEN"] = before
