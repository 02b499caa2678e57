"""The attack suite's target: one project with an experiment, a run, an artifact and a version."""

from __future__ import annotations

from typing import Any

import pytest

from pave_testing import PaveServer, World


@pytest.fixture(scope="module")
def target(shared_server: PaveServer) -> dict[str, Any]:
    """A project with an experiment, a run with an artifact, a model version, and a viewer."""
    world = World(shared_server)
    name = "attack-surface"
    world.project(name)
    experiment_id = world.experiment(name)
    run_id = world.run(experiment_id)
    version = world.version(name, run_id)
    with world.admin() as admin:
        put = admin.put(
            f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/ok.txt",
            content=b"ok",
        )
        assert put.status_code == 200
    world.member(name, "valerie", "viewer")
    return {
        "world": world,
        "server": shared_server,
        "project": name,
        "experiment_id": experiment_id,
        "run_id": run_id,
        "version": version,
        "viewer": world.token("valerie", "viewer"),
        "developer": world.token("devon", "developer"),
    }
