"""Shared nothing, storage side: a platform on an S3-compatible store (moto's server), clients with
only PAVE_URL and PAVE_TOKEN, each on its own home, and a reproduction on a machine that never saw
the project."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
from pathlib import Path

import httpx
import pytest

from pave_testing import PaveServer, S3Server, free_port, pave_env, run_pave

pytestmark = pytest.mark.slow

AWS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


def client_env(home: Path, server: PaveServer, token: str) -> dict[str, str]:
    """A client machine: its own HOME and PAVE_HOME, no object-store credentials, no shared disk."""
    env = {k: v for k, v in pave_env(home).items() if k not in AWS}
    return env | {"HOME": str(home), "PAVE_URL": server.url, "PAVE_TOKEN": token}


def keys(s3: S3Server, bucket: str) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_clients_with_only_url_and_token_run_and_reproduce_on_s3(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.bucket()
    server = PaveServer.up(
        tmp_path / "control-plane", PAVE_ARTIFACT_ROOT=f"s3://{bucket}/pave", **s3_server.env
    )
    try:
        alice = client_env(tmp_path / "alice", server, server.token)
        project = tmp_path / "alice" / "churn"
        (project / ".env").parent.mkdir(parents=True)
        made = run_pave("new", "churn", "-t", "tabular-classification", "--dir", str(project), env=alice)
        assert made.returncode == 0, made.stderr[-3000:]
        (project / ".env").write_text("DB_PASSWORD=hunter2\n")
        ran = run_pave("run", str(project), "--json", env=alice, timeout=600)
        assert ran.returncode == 0, ran.stderr[-3000:]
        result = json.loads(ran.stdout)

        stored = keys(s3_server, bucket)
        sha = hashlib.sha256((project / "data" / "train.csv").read_bytes()).hexdigest()
        assert f"pave/datasets/{sha[:2]}/{sha}/train.csv" in stored
        snapshot = result["code_snapshot"]
        assert f"pave/code/{snapshot[:2]}/{snapshot}/code.tar.gz" in stored
        assert any(k.startswith(f"pave/{result['experiment_id']}/") and "MLmodel" in k for k in stored)
        # nothing of the run on a local disk: not the client's home, not the control plane's
        assert not (tmp_path / "control-plane" / "artifacts").exists() or not any(
            (tmp_path / "control-plane" / "artifacts").rglob("*.csv")
        )
        assert not list((tmp_path / "alice").rglob("manifest.json"))
        archive = (
            s3_server.client()
            .get_object(Bucket=bucket, Key=f"pave/code/{snapshot[:2]}/{snapshot}/code.tar.gz")["Body"]
            .read()
        )
        assert b"hunter2" not in gzip.decompress(archive), "secrets stay out of snapshots"

        # Bob's machine never saw the project: no folder, no shared disk, no AWS credentials.
        bob_token = _token(server, "bob", "churn", "developer")
        bob = client_env(tmp_path / "bob", server, bob_token)
        (tmp_path / "bob").mkdir()
        reproduced = run_pave("reproduce", result["run_id"], env=bob, timeout=600, cwd=tmp_path / "bob")
        assert reproduced.returncode == 0, reproduced.stderr[-3000:]
        assert "identical metrics" in reproduced.stdout
        assert "code snapshot" in reproduced.stdout
    finally:
        server.stop()


def _token(server: PaveServer, identity: str, project: str | None, role: str) -> str:
    with server.client() as admin:
        if project:
            admin.put(f"/api/v1/projects/{project}/members/{identity}", json={"role": role})
        made = admin.post(
            "/api/v1/tokens", json={"identity": identity, "name": "t", "role": role, "project": project}
        )
        assert made.status_code in (200, 201), made.text
        return str(made.json()["secret"])


def test_object_routes_keep_projects_apart(shared_server: PaveServer, tmp_path: Path) -> None:
    with shared_server.client() as admin:
        for name in ("objs-a", "objs-b"):
            admin.post("/api/v1/projects", json={"name": name})
    data = os.urandom(1000)
    sha = hashlib.sha256(data).hexdigest()
    path = f"/api/v1/projects/objs-a/datasets/{sha}"
    writer = _token(shared_server, "objs-writer", "objs-a", "developer")
    outsider = _token(shared_server, "objs-outsider", "objs-b", "developer")
    headers = {"Content-Type": "application/octet-stream"}
    with httpx.Client(base_url=shared_server.url, timeout=30) as http:

        def call(method: str, token: str, url: str = path, **kwargs: object) -> httpx.Response:
            auth = {"Authorization": f"Bearer {token}"}
            return http.request(method, url, headers=headers | auth, **kwargs)  # type: ignore[arg-type]

        assert call("HEAD", writer).status_code == 404
        wrong = call("PUT", writer, params={"filename": "d.bin"}, content=b"other bytes")
        assert wrong.status_code == 400, "bytes that are not the digest in the URL are refused"
        assert "sha256" in wrong.json()["error"]["message"]
        assert call("HEAD", writer).status_code == 404, "and nothing was stored"
        put = call("PUT", writer, params={"filename": "d.bin"}, content=data)
        assert put.status_code == 201, put.text
        assert call("HEAD", writer).status_code == 200
        assert call("GET", writer).content == data
        # a caller without a role on objs-a: refused, whatever the method
        for method in ("HEAD", "GET"):
            assert call(method, outsider).status_code == 403
        assert call("PUT", outsider, params={"filename": "d.bin"}, content=data).status_code == 403
        # the same bytes are not objs-b's until objs-b sends them itself
        other = f"/api/v1/projects/objs-b/datasets/{sha}"
        assert call("GET", outsider, url=other).status_code == 404
        assert call("PUT", outsider, url=other, params={"filename": "x.bin"}, content=data).status_code == 201
        assert call("GET", outsider, url=other).content == data
        bad = call("PUT", writer, url=f"/api/v1/projects/objs-a/datasets/{sha}", params={"filename": "../x"})
        assert bad.status_code in (200, 201, 400)  # indexed already: nothing is written either way


@pytest.mark.parametrize("command", ["up", "serve"])
def test_a_wrong_object_store_at_start_is_one_line_naming_the_setting(
    command: str, s3_server: S3Server, tmp_path: Path
) -> None:
    """An unreachable store, refused credentials, a missing bucket: `pave up` and `pave serve` stop
    before serving, with the error and its fix (each naming the setting) and no traceback."""
    bucket = s3_server.bucket()
    cases = {
        "missing bucket": (
            {"PAVE_ARTIFACT_ROOT": "s3://no-such-bucket/p"},
            ("PAVE_ARTIFACT_ROOT", "no-such-bucket does not exist", s3_server.endpoint),
            ("aws s3 mb s3://no-such-bucket", "PAVE_ARTIFACT_ROOT"),
        ),
        "unreachable": (
            {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"},
            ("PAVE_ARTIFACT_ROOT", "no object store answers at AWS_ENDPOINT_URL=http://127.0.0.1:"),
            ("set AWS_ENDPOINT_URL",),
        ),
        "wrong credentials": (
            {"AWS_ACCESS_KEY_ID": "not-a-key", "AWS_SECRET_ACCESS_KEY": "nope"},
            ("PAVE_ARTIFACT_ROOT", "refused AWS_ACCESS_KEY_ID=not-a-key"),
            ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",),
        ),
    }
    port_flag = "--port"
    for case, (extra, headline, fix) in cases.items():
        home = tmp_path / case.replace(" ", "-")
        env = pave_env(home) | s3_server.env | {"PAVE_ARTIFACT_ROOT": f"s3://{bucket}/p"} | extra
        args = (command, port_flag, str(free_port()))
        with s3_server.checking_credentials() if case == "wrong credentials" else contextlib.nullcontext():
            result = run_pave(*args, env=env, timeout=120)
        assert result.returncode != 0, case
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        errors = [line for line in lines if line.startswith("error:")]
        hints = [line for line in lines if line.startswith("hint:")]
        assert len(errors) == 1, result.stderr[-3000:]
        assert len(hints) == 1, result.stderr[-3000:]
        for words in headline:
            assert words in errors[0], (case, errors[0])
        for words in fix:
            assert words in hints[0], (case, hints[0])
        assert "nope" not in result.stderr, "the secret key is never printed"
        assert not list(home.glob("run/*.json")), "nothing was started (no pid file)"
