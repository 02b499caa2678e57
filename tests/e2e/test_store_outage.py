"""The object store goes away while `pave run` uploads: the run fails with a resume hint, nothing is
half-registered, and the next `pave run` (the store back) finishes from the cache.

The store's outage is a proxy in front of moto's server that, on cue, drops every connection and
answers no more: mid-way through a multipart dataset upload, then at the model's upload through
MLflow's artifact proxy. The cue is in the bytes (no timing): after so many bytes sent to the
store, or at the first request naming the model's files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pave_testing import PaveServer, S3Server, pave_env, run_pave

pytestmark = pytest.mark.slow

AWS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


class Outage:
    """A TCP proxy to the store that goes down when ``cue(bytes so far, this chunk)`` says so:
    every open connection is cut and new ones are closed at once, until :meth:`end`."""

    def __init__(self, target: str) -> None:
        host, _, port = target.removeprefix("http://").partition(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.cue: Callable[[int, bytes], bool] | None = None
        self.sent = 0
        self.down = threading.Event()
        self.cut = threading.Event()  # set once an outage happened
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def begin_when(self, cue: Callable[[int, bytes], bool]) -> None:
        with self.lock:
            self.sent, self.cue = 0, cue
            self.cut.clear()

    def end(self) -> None:
        with self.lock:
            self.cue = None
            self.down.clear()

    def close(self) -> None:
        self.listener.close()
        self._drop()

    def _drop(self) -> None:
        with self.lock:
            sockets, self.open = list(self.open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, to_store: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(1 << 16):
                if to_store and self._goes_down(data):
                    self._drop()
                    return
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _goes_down(self, data: bytes) -> bool:
        with self.lock:
            if self.down.is_set():
                return True
            self.sent += len(data)
            if self.cue is None or not self.cue(self.sent, data):
                return False
            self.down.set()
            self.cut.set()
            return True


@pytest.fixture
def outage(s3_server: S3Server) -> Iterator[Outage]:
    proxy = Outage(s3_server.endpoint)
    yield proxy
    proxy.close()


def _runs(server: PaveServer, experiment: str) -> list[dict[str, object]]:
    with server.client() as admin:
        found = admin.get(
            "/mlflow/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": experiment}
        )
        assert found.status_code == 200, found.text
        experiment_id = found.json()["experiment"]["experiment_id"]
        answer = admin.post("/mlflow/api/2.0/mlflow/runs/search", json={"experiment_ids": [experiment_id]})
        return list(answer.json().get("runs", []))


def _versions(server: PaveServer, model: str) -> list[dict[str, object]]:
    with server.client() as admin:
        answer = admin.get(
            "/mlflow/api/2.0/mlflow/model-versions/search", params={"filter": f"name='{model}'"}
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json().get("model_versions", []))


def _failed_with_a_resume_hint(result: object, project: Path) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.returncode != 0, stderr[-3000:]  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr[-3000:]
    hints = [line for line in stderr.splitlines() if line.startswith("hint:")]
    assert hints, stderr[-3000:]
    assert f"pave run {project}" in hints[-1], hints[-1]
    assert "cache" in hints[-1]
    return stderr


def test_a_store_outage_mid_run_fails_it_resumably_and_registers_nothing(
    s3_server: S3Server, outage: Outage, tmp_path: Path
) -> None:
    bucket = s3_server.bucket()
    store = s3_server.env | {"AWS_ENDPOINT_URL": outage.endpoint}
    server = PaveServer.up(tmp_path / "control-plane", PAVE_ARTIFACT_ROOT=f"s3://{bucket}/pave", **store)
    try:
        # a client with only PAVE_URL and PAVE_TOKEN; MLflow's client does not retry for minutes
        home = tmp_path / "alice"
        client = {k: v for k, v in pave_env(home).items() if k not in AWS}
        client |= {"HOME": str(home), "PAVE_URL": server.url, "PAVE_TOKEN": server.token}
        client |= {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
        project = home / "churn"
        made = run_pave("new", "churn", "-t", "tabular-classification", "--dir", str(project), env=client)
        assert made.returncode == 0, made.stderr[-3000:]
        train = project / "data" / "train.csv"
        header, *rows = train.read_text().splitlines(keepends=True)
        body = "".join(rows)
        train.write_text(header + body * (20_000_000 // len(body) + 1))  # ~20 MB: a multipart upload
        sha = hashlib.sha256(train.read_bytes()).hexdigest()

        # 1. the store goes down 12 MB into the dataset's upload (its second part)
        outage.begin_when(lambda sent, _: sent > 12_000_000)
        first = run_pave("run", str(project), env=client, timeout=600)
        assert outage.cut.is_set(), "the store went down during the run"
        stderr = _failed_with_a_resume_hint(first, project)
        assert "object store" in stderr
        outage.end()
        [run] = _runs(server, "churn")
        assert run["info"]["status"] == "FAILED"  # type: ignore[index]
        assert not _versions(server, "churn")
        with server.client() as admin:  # the half-sent dataset version is not there, not even in part
            assert admin.head(f"/api/v1/projects/churn/datasets/{sha}").status_code == 404
        stored = [
            item["Key"]
            for page in s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])
        ]
        assert not [key for key in stored if key.startswith("pave/datasets/")], stored

        # 2. the store goes down when the model goes up (the steps ran and are cached)
        outage.begin_when(lambda _, data: b"MLmodel" in data)
        second = run_pave("run", str(project), env=client, timeout=600)
        assert outage.cut.is_set(), "the store went down at the model's upload"
        _failed_with_a_resume_hint(second, project)
        outage.end()
        statuses = sorted(str(r["info"]["status"]) for r in _runs(server, "churn"))  # type: ignore[index]
        assert statuses == ["FAILED", "FAILED"]
        assert not _versions(server, "churn"), "no model version from a run whose model did not go up"

        # 3. the store is back: the same command finishes, from the cache
        third = run_pave("run", str(project), "--json", env=client, timeout=600)
        assert third.returncode == 0, third.stderr[-3000:]
        result = json.loads(third.stdout)
        assert result["status"] == "FINISHED"
        cached = {step["name"] for step in result["steps"] if step["status"] == "cached"}
        assert cached == {"prepare", "train", "evaluate"}, result["steps"]
        [version] = _versions(server, "churn")
        assert str(version["run_id"]) == result["run_id"]
        with server.client() as admin:
            assert admin.head(f"/api/v1/projects/churn/datasets/{sha}").status_code == 200
    finally:
        server.stop()
