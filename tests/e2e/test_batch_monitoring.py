"""`pave batch --monitor` from a client on a home of its own: the sample reaches the control plane's
monitors through `POST /api/v1/projects/P/batch/monitoring`, which checks every record and refuses
another project's, malformed ones and callers without the developer role, storing nothing then."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from pave.client import Client
from pave.serving.inference_log import read_inference_log
from pave_testing import PaveServer, S3Server, World, register_sklearn

pytestmark = pytest.mark.slow

PROJECT = "batch-feed"
OTHER = "batch-other"
ROUTE = f"/api/v1/projects/{PROJECT}/batch/monitoring"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A control plane on a home of its own, a registered model, and the callers of the tests."""
    server = PaveServer.up(tmp_path_factory.mktemp("control-plane"))
    try:
        world = World(server)
        world.project(PROJECT)
        world.project(OTHER)
        rng = np.random.default_rng(5)
        frame = pd.DataFrame(rng.normal(size=(3000, 6)), columns=[f"f{i}" for i in range(6)])
        os.environ["MLFLOW_TRACKING_TOKEN"] = server.token
        model = LogisticRegression().fit(frame, (frame["f0"] > frame["f1"]).astype(int))
        register_sklearn(server.url, PROJECT, model, frame)
        world.member(PROJECT, "dev", "developer")
        world.member(PROJECT, "val", "viewer")
        world.member(OTHER, "odd", "developer")
        yield {
            "server": server,
            "world": world,
            "frame": frame,
            "developer": world.token("dev"),
            "viewer": world.token("val", "viewer"),
            "outsider": world.token("odd"),
        }
    finally:
        server.stop()


def _log_files(server: PaveServer) -> list[str]:
    folder = server.home / "inference-log"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_client_on_another_home_feeds_the_control_planes_drift_monitor(
    platform: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pave.data.profile import profile_frame
    from pave.monitoring.monitors import evaluate_drift
    from pave.monitoring.spec import MonitorDef

    server: PaveServer = platform["server"]
    laptop = tmp_path / "laptop"
    monkeypatch.setenv("PAVE_HOME", str(laptop))  # the client's home is not the control plane's
    frame: pd.DataFrame = platform["frame"]
    shifted = frame.assign(f2=frame["f2"] * 3 + 10)
    source = tmp_path / "in.parquet"
    shifted.to_parquet(source, row_group_size=1000)
    before = _log_files(server)
    with Client(url=server.url, token=platform["developer"]) as client:
        result = client.batch(PROJECT, str(source), str(tmp_path / "out.parquet"), version="1", monitor=True)
    assert result.monitored == len(shifted)
    assert not (laptop / "inference-log").exists() or not list((laptop / "inference-log").iterdir())
    added = sorted(set(_log_files(server)) - set(before))
    assert len(added) == 1, added
    assert added[0].startswith("inference-")

    monitor = MonitorDef.model_validate({"name": "inputs", "type": "drift", "window": "1h"})
    ended = datetime.now(UTC) + timedelta(seconds=1)
    _, summary = evaluate_drift(server.home / "inference-log", PROJECT, monitor, profile_frame(frame), ended)
    assert summary["rows"] == len(shifted)
    assert "f2" in summary["drifted"]
    audited = platform["world"].audit(project=PROJECT)
    fed = [e for e in audited if e["action"] == "feed-monitoring" and "(3000 rows)" in (e["detail"] or "")]
    assert len(fed) == 1
    assert fed[0]["identity"] == "dev"
    assert f"({len(shifted)} rows) of version(s) 1 stored as file {added[0]}" in fed[0]["detail"]


def _record(**change: Any) -> dict[str, Any]:
    import time

    record = {
        "id": "pave-batch:abc-0",
        "deployment": PROJECT,
        "version": "1",
        "ts": time.time(),
        "latency_ms": 0.0,
        "shadow": False,
        "inputs": {"f0": [0.5, 1.5], "f1": [1.0, 2.0]},
        "outputs": {"predict": [0, 1], "predict_proba": [[0.4, 0.6], [0.9, 0.1]]},
    }
    return record | change


def _post(platform: dict[str, Any], token: str, body: Any) -> httpx.Response:
    with platform["server"].client(token) as http:
        return http.post(ROUTE, json=body)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"records": [_record(), _record(deployment=OTHER)]}, f"record 1: deployment '{OTHER}'"),
        ({"records": [_record(), "not an object"]}, "record 1: a record is a JSON object"),
        ({"records": [_record(inputs={"f0": [1.0]})]}, "record 0: input 'f0' is not a list of 2 values"),
        ({"records": [_record(id="req-1")]}, "record 0: id is not a batch record's id"),
        ({"records": [_record(), _record(version="7")]}, "record 1: version '7' is not a registered version"),
        ({"records": []}, "records"),
        ({"lines": "{}"}, "records"),
    ],
)
def test_bad_records_are_refused_and_nothing_is_stored(
    platform: dict[str, Any], body: Any, named: str
) -> None:
    before = _log_files(platform["server"])
    refused = _post(platform, platform["developer"], body)
    assert refused.status_code == 400, refused.text
    assert named in refused.text
    assert _log_files(platform["server"]) == before


@pytest.mark.parametrize("who", ["viewer", "outsider"])
def test_a_viewer_or_another_projects_developer_is_refused(platform: dict[str, Any], who: str) -> None:
    before = _log_files(platform["server"])
    refused = _post(platform, platform[who], {"records": [_record()]})
    assert refused.status_code == 403, refused.text
    assert _log_files(platform["server"]) == before


def test_a_developer_stores_checked_records_as_a_log_file(platform: dict[str, Any]) -> None:
    before = _log_files(platform["server"])
    stored = _post(platform, platform["developer"], {"records": [_record(), _record(id="pave-batch:abc-1")]})
    assert stored.status_code == 201, stored.text
    assert stored.json() | {"name": "-"} == {
        "project": PROJECT,
        "records": 2,
        "rows": 4,
        "stored": "file",
        "name": "-",
    }
    assert sorted(set(_log_files(platform["server"])) - set(before)) == [stored.json()["name"]]


def test_with_the_log_shipped_the_records_are_a_segment_the_control_plane_mirrors(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = f"feed-{secrets.token_hex(4)}"
    s3 = s3_server.client()
    s3.create_bucket(Bucket=bucket)
    server = PaveServer.up(tmp_path / "cp", PAVE_ARTIFACT_ROOT=f"s3://{bucket}/pave", **s3_server.env)
    try:
        World(server).project(PROJECT)
        frame = pd.DataFrame(np.random.default_rng(6).normal(size=(200, 2)), columns=["f0", "f1"])
        os.environ["MLFLOW_TRACKING_TOKEN"] = server.token
        model = LogisticRegression().fit(frame, (frame["f0"] > frame["f1"]).astype(int))
        register_sklearn(server.url, PROJECT, model, frame)  # the records' version 1
        with server.client() as http:
            stored = http.post(ROUTE, json={"records": [_record()]})
        assert stored.status_code == 201, stored.text
        assert stored.json()["stored"] == "segment"
        key = stored.json()["name"]
        assert key.startswith("inference-log/")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="pave/inference-log/")
        assert [o["Key"] for o in listed.get("Contents", [])] == [f"pave/{key}"]
        # mirrored at once into the folder this control plane's monitors read
        logged = read_inference_log(server.home / "inference-log", deployment=PROJECT)
        assert list(logged["id"]) == ["pave-batch:abc-0"]
    finally:
        server.stop()
