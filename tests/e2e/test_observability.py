"""Observability as operators expect it, on a live platform: JSON log lines with request ids
(PAVE_LOG_FORMAT=json), metric names `promtool check metrics` accepts on both /metrics, and the
Grafana dashboard and Prometheus alert rules under deploy/ (promtool-checked, and naming only
metrics the platform really exposes)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pave_testing import PaveServer, need_service, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _promtool() -> str:
    def check() -> None:
        if shutil.which("promtool") is None:
            raise FileNotFoundError("promtool")

    need_service("promtool", "run scripts/tools (Debian: apt-get install prometheus)", check)
    return str(shutil.which("promtool"))


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A platform logging JSON, with a deployed model that answered a prediction."""
    home = tmp_path_factory.mktemp("pave-json")
    server = PaveServer.up(home, PAVE_LOG_FORMAT="json")
    try:
        gateway = server.wait_gateway()
        env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}
        project = home / "obs"
        created = run_pave("new", "obs", "-t", "tabular-classification", "--dir", str(project), env=env)
        assert created.returncode == 0, created.stderr
        ran = run_pave("run", str(project), "--json", env=env, timeout=600)
        assert ran.returncode == 0, ran.stderr[-2000:]
        deployed = run_pave("deploy", "obs", "--version", "1", env=env)
        assert deployed.returncode == 0, deployed.stderr
        headers = server.gateway_headers
        deadline = time.monotonic() + 120
        while httpx.get(f"{gateway}/v2/models/obs/ready", headers=headers, timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "obs not ready on the gateway"
            time.sleep(0.2)
        row = {"mean radius": 14.0}  # the rest of the columns are filled below
        metadata = httpx.get(f"{gateway}/v2/models/obs", headers=headers, timeout=5).json()
        inputs = [
            {"name": i["name"], "datatype": "FP64", "shape": [1], "data": [row.get(i["name"], 1.0)]}
            for i in metadata["inputs"]
        ]
        answer = httpx.post(
            f"{gateway}/v2/models/obs/infer", json={"inputs": inputs}, headers=headers, timeout=60
        )
        assert answer.status_code == 200, answer.text
        with server.client() as client:
            assert (
                client.get("/api/v1/projects", headers={"x-request-id": "obs-request-1"}).status_code == 200
            )
            metrics = {
                "control plane": client.get("/metrics").text,
                "gateway": httpx.get(f"{gateway}/metrics", headers=headers, timeout=10).text,
            }
        yield {
            "server": server,
            "inference_id": answer.headers["pave-inference-id"],
            "metrics": metrics,
        }
    finally:
        server.stop()


def _records(path: Path, skip: set[str]) -> list[dict[str, Any]]:
    """Every line of a log file as JSON (a line that does not parse fails the test)."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.strip() in skip:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"{path.name} line {number} is not JSON: {line[:300]}")
    return records


def test_json_logs_parse_line_by_line_with_request_ids(observed: dict[str, Any]) -> None:
    server: PaveServer = observed["server"]
    time.sleep(0.5)  # the access record is written after the answer
    # stdout carries one line that is not a log record: the admin token of the first start
    control_plane = _records(server.log, skip={server.token})
    gateway = _records(server.home / "logs" / "gateway.log", skip=set())

    for record in control_plane + gateway:
        assert {"ts", "level", "logger", "message", "process"} <= set(record), record
    access = [r for r in control_plane if r["logger"] == "pave.access"]
    mine = [r for r in access if r.get("request_id") == "obs-request-1"]
    assert len(mine) == 1, access[-5:]
    assert (mine[0]["method"], mine[0]["path"], mine[0]["status"]) == ("GET", "/api/v1/projects", 200)
    assert mine[0]["duration_ms"] >= 0
    assert all(re.fullmatch(r"[A-Za-z0-9._-]{1,64}", r["request_id"]) for r in access)
    assert any(r["logger"] == "pave.up" and "applied migration" in r["message"] for r in control_plane)

    served = [r for r in gateway if r["logger"] == "pave.access" and r["path"] == "/v2/models/obs/infer"]
    assert [(r["request_id"], r["status"]) for r in served] == [(observed["inference_id"], 200)]


@pytest.mark.parametrize("process", ["control plane", "gateway"])
def test_promtool_accepts_the_metric_names(observed: dict[str, Any], process: str) -> None:
    promtool = _promtool()
    text = observed["metrics"][process]
    assert "pave_" in text
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "", checked.stdout


def test_the_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    promtool = _promtool()
    rules = DEPLOY / "prometheus" / "pave-alerts.yml"
    checked = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [promtool, "test", "rules", "pave-alerts.test.yml"],
        cwd=rules.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


def _exposed(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        match = re.match(r"# TYPE (\S+) (\S+)", line)
        if match:
            name, kind = match[1], match[2]
            names.add(name)
            if kind == "counter":
                names.add(f"{name}_total")
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def test_the_dashboard_and_the_rules_name_only_metrics_the_platform_exposes(observed: dict[str, Any]) -> None:
    exposed = set().union(*(_exposed(text) for text in observed["metrics"].values()))
    dashboard = json.loads((DEPLOY / "grafana" / "pave-dashboard.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    expressions.append(dashboard["templating"]["list"][1]["query"]["query"])
    rules = (DEPLOY / "prometheus" / "pave-alerts.yml").read_text()
    named = set(re.findall(r"\bpave_[a-z0-9_]+", "\n".join(expressions) + rules))
    assert len(named) > 15
    assert named <= exposed, sorted(named - exposed)
    assert len(expressions) > 15
