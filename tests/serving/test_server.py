"""`python -m pave.serving --deployments FILE` in a subprocess: the JSON file source end to end."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import orjson
from serving_kit import columns_request

from pave.serving.loading import resolve


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write(path, version, uri):
    doc = {"deployments": [{"name": "cancer", "versions": [{"version": version, "uri": str(uri)}]}]}
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(doc))
    tmp.replace(path)  # atomic, as a deploy tool should write it


def test_gateway_process_serves_the_file_and_follows_its_changes(models, tmp_path):
    v1, v2 = (
        resolve(models.uri(v), tracking_uri=models.tracking_uri, cache_dir=tmp_path / "models") for v in "12"
    )
    deployments = tmp_path / "deployments.json"
    write(deployments, "1", v1)
    port = free_port()
    env = {**os.environ, "PAVE_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "pave.serving", "--deployments", str(deployments), "--port", str(port)]
    proc = subprocess.Popen([*command, "--workers", "1"], env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "the gateway process exited"
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the gateway did not become ready"
            time.sleep(0.1)
        X = models.X.iloc[300:320]
        body = columns_request(X)
        first = httpx.post(f"{url}/v2/models/cancer/infer", json=body)
        assert first.status_code == 200
        assert first.json()["outputs"][0]["data"] == models.estimators["1"].predict(X).tolist()

        write(deployments, "2", v2)
        deadline = time.monotonic() + 120
        infer = f"{url}/v2/models/cancer/infer"
        while (answer := httpx.post(infer, json=body)).json()["model_version"] != "2":
            assert answer.status_code == 200
            assert time.monotonic() < deadline, "the gateway did not pick up the new file"
            time.sleep(0.05)
        assert answer.json()["outputs"][0]["data"] == models.estimators["2"].predict(X).tolist()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
