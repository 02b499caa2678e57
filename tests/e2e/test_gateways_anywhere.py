"""Gateways anywhere: two `pave serve` on homes of their own ship their inference log through the
object store; the control plane (a third home) answers feedback by inference id for requests
either answered and monitors both; a gateway keeps serving while the control plane is down."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from pave_testing import PaveServer, S3Server, pave_env, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]
NAME = "anywhere"


def _wait(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass  # not listening yet
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


class Gateway:
    """`pave serve` on a home of its own, sharing only the database and the object store."""

    def __init__(self, home: Path, shared: dict[str, str], *, flags: bool = False) -> None:
        self.home = home
        home.mkdir(parents=True)
        self.env = pave_env(home, **shared)
        self.url = f"http://127.0.0.1:{self.env['PAVE_GATEWAY_PORT']}"
        command = [sys.executable, "-m", "pave", "serve"]
        if flags:  # the store, the object store and its URL given on the command line
            command += ["--database-url", self.env.pop("PAVE_DATABASE_URL")]
            command += ["--artifact-root", self.env.pop("PAVE_ARTIFACT_ROOT")]
            command += ["--public-url", self.url]
        else:
            self.env["PAVE_GATEWAY_PUBLIC_URL"] = self.url
        with (home / "serve.log").open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def infer(self, token: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v2/models/{NAME}/infer",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[list[Gateway]]:
    started: list[Gateway] = []
    yield started
    for gateway in started:
        gateway.stop()


def test_two_gateways_on_their_own_homes_ship_their_log_to_the_control_plane(
    postgres_url: str, s3_server: S3Server, tmp_path: Path, gateways: list[Gateway]
) -> None:
    # shipping is on by itself: the artifact root is an object store
    shared = s3_server.env | {
        "PAVE_DATABASE_URL": postgres_url,
        "PAVE_ARTIFACT_ROOT": f"s3://{s3_server.bucket()}/pave",
    }
    server = PaveServer.up(tmp_path / "control-plane", "--no-gateway", **shared)
    try:
        client_env = pave_env(tmp_path / "client") | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}
        project = tmp_path / "client" / NAME
        made = run_pave("new", NAME, "-t", "tabular-classification", "--dir", str(project), env=client_env)
        assert made.returncode == 0, made.stderr
        ran = run_pave("run", str(project), "--json", env=client_env, timeout=600)
        assert ran.returncode == 0, ran.stderr[-2000:]
        assert run_pave("deploy", NAME, "--version", "1", env=client_env).returncode == 0

        gateways.extend(Gateway(tmp_path / f"gateway-{n}", shared, flags=n == 2) for n in (1, 2))
        rows = pd.read_csv(project / "data" / "train.csv").drop(columns=["target"]).head(2)
        inputs = [
            {"name": c, "datatype": "FP64", "shape": [len(rows)], "data": rows[c].astype(float).tolist()}
            for c in rows.columns
        ]
        for gateway in gateways:
            _wait(
                lambda g=gateway: g.infer(server.token, {"inputs": inputs}).status_code == 200, "not served"
            )

        # the deploy command names both gateways, where they registered themselves (a gateway serves
        # before its first heartbeat is written: wait for both rows, as `pave status` would show them)
        def registered() -> set[str]:
            processes = httpx.get(
                f"{server.url}/api/v1/platform/processes",
                headers={"Authorization": f"Bearer {server.token}"},
                timeout=30,
            ).json()
            return {p["url"] for p in processes if p["role"] == "gateway" and p["healthy"]}

        _wait(lambda: registered() >= {g.url for g in gateways}, "the gateways did not register")
        listed = run_pave("deploy", NAME, "--version", "1", env=client_env)
        for gateway in gateways:
            assert f"infer: POST {gateway.url}/v2/models/{NAME}/infer" in listed.stdout, listed.stdout

        ids = {}
        for n, gateway in enumerate(gateways):
            for i in range(5):
                request_id = f"g{n}-r{i}"
                answer = gateway.infer(server.token, {"id": request_id, "inputs": inputs})
                assert answer.status_code == 200, answer.text
                ids[request_id] = answer.json()["outputs"][0]["data"]

        # feedback by inference id, for requests either gateway answered
        with server.client() as api:
            posted = api.post(
                "/api/v1/feedback",
                json={"items": [{"inference_id": i, "label": [0, 1]} for i in ids]},
                timeout=60,
            )
        assert posted.status_code in (200, 201), posted.text
        assert posted.json()["created"] == len(ids)

        # the control plane read both gateways' log from the object store, not from their homes
        mirrored = list((server.home / "inference-log").glob("inference-*.jsonl"))
        documents = [json.loads(line) for path in mirrored for line in path.read_text().splitlines()]
        assert {d["id"] for d in documents} >= set(ids)
        for gateway in gateways:
            assert not (gateway.home / "inference-log").exists() or not any(
                (gateway.home / "inference-log").iterdir()
            ), "a shipping gateway writes its log to its spool, nothing to the shared folder"

        # the log is in the object store, one row per shipped file
        keys = [
            o["Key"]
            for o in s3_server.client()
            .list_objects_v2(Bucket=shared["PAVE_ARTIFACT_ROOT"].split("/")[2], Prefix="pave/inference-log/")
            .get("Contents", [])
        ]
        assert len(keys) >= 2, keys

        # the control plane away: the gateways answer from what they have loaded
        server.kill()
        for gateway in gateways:
            assert gateway.infer(server.token, {"inputs": inputs}).status_code == 200
    finally:
        server.stop()
