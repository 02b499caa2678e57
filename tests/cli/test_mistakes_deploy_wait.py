"""`pave deploy --wait` when nothing can serve the deployment: it says so at once with exit 5 (the
platform is not ready), instead of returning 0 as if the model were served; the deployment stays."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from pave.client import Client
from pave_testing import PaveServer, register_sklearn, run_pave

PROJECT = "wait-nothing"


@pytest.fixture(scope="module")
def no_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaveServer]:
    server = PaveServer.up(tmp_path_factory.mktemp("no-gateway"), "--no-gateway")
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    with Client(url=server.url, token=server.token) as client:
        client.create_project(PROJECT, owner="admin", description="deploy --wait with no gateway")
    os.environ["MLFLOW_TRACKING_TOKEN"] = server.token
    register_sklearn(server.url, PROJECT, LogisticRegression().fit(frame, [0, 1, 0, 1]), frame)
    yield server
    server.stop()


def test_wait_with_no_gateway_running_is_exit_5_and_the_deployment_stays(
    no_gateway: PaveServer, tmp_path: Path
) -> None:
    env = no_gateway.env | {"PAVE_URL": no_gateway.url, "PAVE_TOKEN": no_gateway.token}
    done = run_pave("deploy", PROJECT, "--version", "1", "--wait", env=env, cwd=tmp_path)
    assert done.returncode == 5, done.stderr
    assert "error: no gateway is running: wait-nothing is deployed, and served once one starts" in done.stderr
    assert "`pave up`, or `pave serve` on any host" in done.stderr
    assert "Traceback" not in done.stderr
    with Client(url=no_gateway.url, token=no_gateway.token) as client:
        assert [d.name for d in client.list_deployments()] == [PROJECT]
