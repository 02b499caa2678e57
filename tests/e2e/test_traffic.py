"""Traffic through the product path: `pave deploy` on a started platform, then the gateway.

A 10% canary gets about a tenth of a thousand requests; a sticky key always lands on the same
version; a shadow never changes an answer and its answers are in the inference log; a deployment
scaled to zero answers its next request correctly.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pave_testing import PaveServer, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

NAME = "traffic"
AUTH: dict[str, str] = {}  # the shared platform's token, set by the fixture


def _body(rows: pd.DataFrame, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(rows)], "data": rows[c].astype(float).tolist()}
            for c in rows.columns
        ]
    }
    if request_id is not None:
        body["id"] = request_id
    return body


def _samples(gateway: str, metric: str) -> dict[str, float]:
    """``version -> value`` of one gateway metric for this test's deployment."""
    text = httpx.get(f"{gateway}/metrics", headers=AUTH, timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == metric and sample.labels.get("deployment") == NAME:
                out[sample.labels["version"]] = sample.value
    return out


def _deploy(env: dict[str, str], gateway: str, *args: str, shares: dict[str, float]) -> None:
    """`pave deploy`, then wait until the gateway routes with the given traffic shares."""
    deployed = run_pave("deploy", NAME, *args, env=env)
    assert deployed.returncode == 0, deployed.stderr
    deadline = time.monotonic() + 120
    while _samples(gateway, "pave_gateway_traffic_share") != shares:
        assert time.monotonic() < deadline, (
            f"the gateway never served {args}: {_samples(gateway, 'pave_gateway_traffic_share')}"
        )
        time.sleep(0.2)


def _outputs(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return {o["name"]: o["data"] for o in response.json()["outputs"]}


@pytest.fixture(scope="module")
def platform(
    shared_server: PaveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], str, pd.DataFrame]]:
    """The shared platform with project `traffic`, versions 1 and 2 registered; undeployed after."""
    env = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    project = tmp_path_factory.mktemp("traffic") / NAME
    created = run_pave("new", NAME, "-t", "tabular-classification", "--dir", str(project), env=env)
    assert created.returncode == 0, created.stderr
    for extra in ([], ["--set", "train.C=0.05"]):
        ran = run_pave("run", str(project), *extra, "--json", env=env, timeout=600)
        assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(ran.stdout)["model_version"] == "2"
    rows = pd.read_csv(project / "data" / "train.csv").drop(columns=["target"]).head(4)
    AUTH.update(shared_server.gateway_headers)
    yield env, shared_server.wait_gateway(), rows
    run_pave("undeploy", NAME, env=env)  # the shared platform serves only what other tests deploy


def test_canary_sticky_shadow_and_scale_to_zero(
    platform: tuple[dict[str, str], str, pd.DataFrame], shared_server: PaveServer
) -> None:
    env, gateway, rows = platform
    url = f"{gateway}/v2/models/{NAME}/infer"
    body = _body(rows)

    # scale to zero: an idle deployment is unloaded, and its next request is answered correctly
    _deploy(env, gateway, "--version", "1", "--scale-to-zero-after", "1", shares={"1": 1.0})
    with httpx.Client(timeout=60, headers=AUTH) as client:
        expected_v1 = _outputs(client.post(f"{gateway}/v2/models/{NAME}/versions/1/infer", json=body))
        deadline = time.monotonic() + 60
        while _samples(gateway, "pave_gateway_model_loaded").get("1") != 0.0:
            assert time.monotonic() < deadline, "version 1 was never unloaded"
            time.sleep(0.2)
        woken = client.post(url, json=body)
        assert woken.headers["pave-model-version"] == "1"
        assert _outputs(woken) == expected_v1
        assert _samples(gateway, "pave_gateway_model_loaded")["1"] == 1.0

        # a 10% canary: within a few percent of 10% over a thousand requests
        _deploy(
            env,
            gateway,
            "--version",
            "1",
            "--canary",
            "2",
            "--canary-weight",
            "10",
            shares={"1": 0.9, "2": 0.1},
        )
        answered = Counter(client.post(url, json=body).headers["pave-model-version"] for _ in range(1000))
        assert set(answered) == {"1", "2"}
        assert abs(answered["2"] / 1000 - 0.10) <= 0.03, answered
        expected_v2 = _outputs(client.post(f"{gateway}/v2/models/{NAME}/versions/2/infer", json=body))

        # sticky A/B: the same key, the same version, by header or by request parameter
        _deploy(
            env,
            gateway,
            "--version",
            "1",
            "--canary",
            "2",
            "--canary-weight",
            "50",
            "--sticky",
            "x-user",
            shares={"1": 0.5, "2": 0.5},
        )
        seen: dict[str, set[str]] = {}
        for user in range(40):
            for _ in range(5):
                response = client.post(url, json=body, headers={"x-user": f"user-{user}"})
                seen.setdefault(f"user-{user}", set()).add(response.headers["pave-model-version"])
            by_param = client.post(url, json=body | {"parameters": {"x-user": f"user-{user}"}})
            seen[f"user-{user}"].add(by_param.headers["pave-model-version"])
        assert all(len(versions) == 1 for versions in seen.values()), seen
        assert {v for versions in seen.values() for v in versions} == {"1", "2"}

        # shadow: version 2 sees a copy of every request; answers are version 1's, unchanged
        _deploy(env, gateway, "--version", "1", "--shadow", "2", shares={"1": 1.0, "2": 0.0})
        ids = [f"shadow-{i}" for i in range(30)]
        for request_id in ids:
            response = client.post(url, json=_body(rows, request_id))
            assert response.headers["pave-model-version"] == "1"
            assert response.json()["model_version"] == "1"
            assert _outputs(response) == expected_v1
    deadline = time.monotonic() + 60
    shadowed: dict[str, dict[str, Any]] = {}
    while len(shadowed) < len(ids):
        assert time.monotonic() < deadline, f"shadow answers logged: {sorted(shadowed)}"
        time.sleep(0.3)
        for line in _log_lines(shared_server.home / "inference-log"):
            if line["id"] in ids and line["shadow"]:
                shadowed[line["id"]] = line
    assert {line["version"] for line in shadowed.values()} == {"2"}
    for line in shadowed.values():
        logged = {name: np.ravel(line["outputs"][name]).tolist() for name in expected_v2}  # log: nested rows
        assert logged == expected_v2


def _log_lines(directory: Path) -> list[dict[str, Any]]:
    lines = []
    for path in sorted(directory.glob("*.jsonl")):
        for raw in path.read_bytes().splitlines():
            if raw.strip():
                lines.append(json.loads(raw))
    return lines
