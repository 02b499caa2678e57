"""In-process control plane for the monitoring tests: a real store, the real app, no server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from monitoring_kit import ControlPlane, Receiver
from starlette.testclient import TestClient

from pave.api.app import create_app
from pave.api.platform import open_platform
from pave.config import Settings


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One platform for the whole session (MLflow's server is configured once per process):
    tests keep apart by using their own deployment names (``ControlPlane.add_deployment``)."""
    settings = Settings(home=tmp_path_factory.mktemp("monitoring") / "home")
    platform = open_platform(settings)
    assert platform.bootstrap_token is not None
    client = TestClient(create_app(platform), headers={"Authorization": f"Bearer {platform.bootstrap_token}"})
    yield ControlPlane(platform, client, platform.bootstrap_token)
    client.close()
    platform.engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on loopback that records what the sinks send it."""
    server = Receiver()
    yield server
    server.close()
