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
    env = {**os.environ, "PAVE_HOME": str(tmp_path / "home"), "PAVE_GATEWAY_GRPC_PORT": str(free_port())}
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


def _requests_by_worker(metrics_dir):
    """Inference requests counted in each worker's metric file (the pid is in the file name)."""
    from prometheus_client.mmap_dict import MmapedDict

    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        total = 0.0
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            if orjson.loads(key)[1] == "pave_gateway_requests_total":
                total += value
        counts[path.stem.removeprefix("counter_")] = total
    return counts


def _ready(url):
    try:
        return httpx.get(f"{url}/v2/health/ready").status_code == 200
    except httpx.HTTPError:
        return False


def test_metrics_are_summed_over_two_workers(models, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    v1 = resolve(models.uri("1"), tracking_uri=models.tracking_uri, cache_dir=tmp_path / "models")
    deployments = tmp_path / "deployments.json"
    write(deployments, "1", v1)
    port = free_port()
    home = tmp_path / "home"
    stale = home / "run" / f"gateway-metrics-{port}"
    stale.mkdir(parents=True)
    (stale / "counter_999999.db").write_bytes(b"left by a previous run")
    env = {**os.environ, "PAVE_HOME": str(home)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "pave.serving", "--deployments", str(deployments), "--port", str(port)]
    proc = subprocess.Popen([*command, "--workers", "2"], env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        # the directory is emptied at start, then both workers load the model and listen
        while (
            (stale / "counter_999999.db").exists() or len(_requests_by_worker(stale)) < 2 or not _ready(url)
        ):
            assert proc.poll() is None, "the gateway process exited"
            assert time.monotonic() < deadline, (
                "the metrics directory was not emptied, or a worker did not start"
            )
            time.sleep(0.2)
        body = columns_request(models.X.head(2))
        sent = 0
        # new connections until both workers have answered some (the kernel picks the worker)
        while min(_requests_by_worker(stale).values()) == 0:
            assert time.monotonic() < deadline, (
                f"one worker answered everything: {_requests_by_worker(stale)}"
            )
            with httpx.Client() as client:
                assert client.post(f"{url}/v2/models/cancer/infer", json=body).status_code == 200
            sent += 1
        # each worker writes its counts to its file within FOLD_SECONDS of the answer
        while sum((per_worker := _requests_by_worker(stale)).values()) < sent:
            assert time.monotonic() < deadline, f"{per_worker} of {sent} requests in the files"
            time.sleep(0.05)
        assert sum(per_worker.values()) == sent
        for _ in range(4):  # whichever worker takes the scrape answers the sum
            text = httpx.get(f"{url}/metrics").text
            samples = {
                (s.name, s.labels.get("version")): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            assert samples[("pave_gateway_requests_total", "1")] == sent
            assert samples[("pave_gateway_request_seconds_count", "1")] == sent
            assert samples[("pave_gateway_model_loaded", "1")] == 1
            assert samples[("pave_gateway_traffic_share", "1")] == 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
