"""Retrain jobs are isolated: a step that reaches for the control plane's secrets gets nothing.

A real ``pave up``; a project whose only step tries to read the control plane's credentials file,
open its database, find a secret in its environment, see the control plane's process and create an
admin token, recording each outcome as a metric. The client's own ``pave run`` records the run;
``pave retrain`` runs it again as a job (restored from its code snapshot in a fresh folder, with a
project-scoped token). Every attempt fails inside the job, and the refused admin call is in the
audit trail, attributed to the job's service identity and token.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pave_testing import (
    RAY_START_ENV,
    PaveServer,
    free_port,
    need_service,
    processes_naming,
    run_pave,
    stop_ray_cluster,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

STEPS = '''
"""Steps of a project that tries to escape its job."""

import json
import os
import sqlite3
import urllib.error
import urllib.request


def _call(method, path, body=None):
    request = urllib.request.Request(
        os.environ["PAVE_URL"] + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + os.environ["PAVE_TOKEN"], "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30):
            return 0.0
    except urllib.error.HTTPError as exc:
        return 1.0 if exc.code == 403 else 0.0


def probe(home, control_pid):
    found = {"processes_hidden": 0.0 if os.path.exists(f"/proc/{control_pid}") else 1.0}
    try:
        with open(os.path.join(home, "credentials.json")) as handle:
            handle.read()
        found["credentials_blocked"] = 0.0
    except OSError:
        found["credentials_blocked"] = 1.0
    try:
        db = sqlite3.connect("file:" + os.path.join(home, "pave.db") + "?mode=ro", uri=True)
        db.execute("select count(*) from tokens").fetchone()
        found["database_blocked"] = 0.0
    except sqlite3.Error:
        found["database_blocked"] = 1.0
    secrets = ("PAVE_DATABASE_URL", "PAVE_MLFLOW_DATABASE_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    leaked = [k for k in secrets if k in os.environ] + [k for k, v in os.environ.items() if home in v]
    found["environment_clean"] = 0.0 if leaked else 1.0
    found["admin_create_blocked"] = _call(
        "POST", "/api/v1/tokens", {"identity": "intruder", "name": "escape", "role": "admin"}
    )
    found["admin_list_blocked"] = _call("GET", "/api/v1/tokens")
    return found
'''


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaveServer]:
    # A home in a folder others may traverse (as ~ of a service account): only the home's own
    # mode keeps a job out, not pytest's private temporary folders.
    parent = Path(tempfile.mkdtemp(prefix="pave-isolation-"))
    parent.chmod(0o755)
    started = PaveServer.up(parent / "home", AWS_ACCESS_KEY_ID="platform-key", AWS_SECRET_ACCESS_KEY="s3cr3t")
    yield started
    started.stop()
    shutil.rmtree(parent, ignore_errors=True)


def _project(root: Path, home: Path, control_pid: int) -> Path:
    project = root / "jailed"
    project.mkdir()
    (project / "steps.py").write_text(textwrap.dedent(STEPS))
    (project / "pave.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: jailed
            steps:
              - name: probe
                function: "steps:probe"
                params: {{home: "{home}", control_pid: {control_pid}}}
            metrics: {{step: probe, primary: credentials_blocked}}
            retrain: {{timeout: 300}}
            """
        )
    )
    return project


def _finished(server: PaveServer, env: dict[str, str], project: str = "jailed") -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        shown = run_pave("loop", project, "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        turns = json.loads(shown.stdout)["runs"]
        if turns and turns[0]["state"] not in ("queued", "starting", "training", "rolling_out"):
            return dict(turns[0])
        time.sleep(0.5)
    raise AssertionError(f"the retrain never ended: {shown.stdout[-3000:]}\n{server.log.read_text()[-3000:]}")


def test_a_retrain_job_cannot_read_the_control_planes_secrets_nor_call_admin_routes(
    server: PaveServer, tmp_path: Path
) -> None:
    home = server.home
    assert (home.stat().st_mode & 0o777) == 0o700, "the platform's home is private"
    with server.client() as admin:  # the client: a developer of the project, on a home of its own
        assert admin.post("/api/v1/projects", json={"name": "jailed"}).status_code == 201
        assert admin.put("/api/v1/projects/jailed/members/dev", json={"role": "developer"}).status_code == 200
        made = admin.post("/api/v1/tokens", json={"identity": "dev", "name": "dev", "project": "jailed"})
        assert made.status_code == 201, made.text
    env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": made.json()["secret"]}
    env["PAVE_HOME"] = str(tmp_path / "client")
    assert server.process is not None
    project = _project(tmp_path, home, server.process.pid)
    ran = run_pave("run", str(project), "--json", env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    first = json.loads(ran.stdout)
    assert first["metrics"]["credentials_blocked"] == 0.0  # the client is root here: it can read them

    shown = json.loads(run_pave("loop", "jailed", "--json", env=env).stdout)
    assert shown["source"]["run_id"] == first["run_id"], "pave run recorded its run"
    shutil.rmtree(project)  # nothing of the client's folder is needed: the job restores the snapshot
    started = run_pave("retrain", "jailed", env=env | {"PAVE_TOKEN": server.token})  # needs 'deploy'

    assert started.returncode == 0, started.stderr
    turn = _finished(server, env)

    assert [e["event"] for e in turn["history"]][:3] == ["triggered", "training", "trained"], turn["error"]
    job = turn["history"][1]["job"]
    assert job["executor"] == "local"
    if os.geteuid() == 0:
        assert job["user"] == "nobody", "a root control plane runs its jobs as another account"
    assert not Path(job["folder"]).exists(), "the job's folder is gone with the job"
    metrics = turn["history"][2]["metrics"]
    hidden = metrics.pop("processes_hidden")
    if os.geteuid() == 0:  # a PID namespace of its own (unshare): the control plane is not there
        assert hidden == 1.0
    assert metrics == {
        "credentials_blocked": 1.0,
        "database_blocked": 1.0,
        "environment_clean": 1.0,
        "admin_create_blocked": 1.0,
        "admin_list_blocked": 1.0,
    }, turn
    assert turn["run_id"] != first["run_id"]

    with server.client() as admin:
        audited = admin.get("/api/v1/audit", params={"identity": "pave-automation", "limit": 1000}).json()
        tokens = {t["id"]: t for t in admin.get("/api/v1/tokens").json()}
    refused = [a for a in audited if a["path"] == "/api/v1/tokens" and a["method"] == "POST"]
    assert len(refused) == 1, audited
    assert refused[0]["outcome"] == "denied"
    assert refused[0]["status"] == 403
    job_token = tokens[refused[0]["token_id"]]
    assert job_token["identity"] == "pave-automation"
    assert job_token["project"] == "jailed"
    assert job_token["role"] == "developer"
    assert job_token["revoked_at"] is not None, "the job's token is revoked when the job ends"
    assert not any(t["name"] == "escape" for t in tokens.values())


# --- a control plane that stops ends its jobs ----------------------------------------------------

SLOW_STEPS = '''
"""A step that is quick for the client and hangs in a retrain job (PAVE_JOB is set there)."""

import os
import time


def work(mark):
    if os.environ.get("PAVE_JOB"):
        with open(mark, "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(900)
    return {"done": 1.0}
'''


def _start_slow_retrain(server: PaveServer, root: Path, mark: Path, env: dict[str, str]) -> dict[str, Any]:
    """Project ``slow`` (its one step writes its pid to ``mark`` and hangs) run by the client, then
    retrained as a job; returns the retrain's job once its step is running."""
    project = root / "slow"
    project.mkdir()
    (project / "steps.py").write_text(textwrap.dedent(SLOW_STEPS))
    (project / "pave.yaml").write_text(
        f"name: slow\nsteps:\n  - {{name: work, function: 'steps:work', params: {{mark: '{mark}'}}}}\n"
        "metrics: {step: work, primary: done}\nretrain: {timeout: 3600}\n"
    )
    with server.client() as admin:
        assert admin.post("/api/v1/projects", json={"name": "slow"}).status_code == 201
    ran = run_pave("run", str(project), "--json", env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert run_pave("retrain", "slow", env=env).returncode == 0
    deadline = time.monotonic() + 300
    while True:
        turn = json.loads(run_pave("loop", "slow", "--json", env=env).stdout)["runs"][0]
        job = next((e["job"] for e in turn["history"] if e["event"] == "training"), None)
        if job is not None and mark.exists():
            return dict(job)
        assert turn["state"] in ("queued", "starting", "training"), turn
        assert time.monotonic() < deadline, f"the job never reached its step: {turn}"
        time.sleep(0.5)


def test_a_control_plane_that_stops_ends_the_retrain_job_it_started(
    server: PaveServer, tmp_path: Path
) -> None:
    shared = Path(tempfile.mkdtemp(prefix="pave-mark-"))  # where the job (nobody) may write
    shared.chmod(0o777)
    env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token, "PAVE_HOME": str(tmp_path / "c")}
    job = _start_slow_retrain(server, tmp_path, shared / "started", env)
    assert processes_naming(job["folder"]), "the job's process names its folder"
    assert server.process is not None

    server.stop()  # SIGTERM, as `pave down` sends; it waits for the control plane to exit
    assert server.process.poll() is not None
    shutil.rmtree(shared, ignore_errors=True)

    assert processes_naming(job["folder"]) == set(), "the job outlived the control plane that started it"
    assert not Path(job["folder"]).exists(), "the job's folder went with it"
    with contextlib.suppress(ProcessLookupError):
        os.kill(job["pid"], 0)
        raise AssertionError(f"the job's process {job['pid']} still runs")
    assert "stopping job pid" in server.log.read_text()


# --- the same job on a Ray cluster ------------------------------------------------------------------


COMMON = ("--include-dashboard=false", "--num-cpus=2", "--disable-usage-stats", "--node-ip-address=127.0.0.1")


@pytest.fixture
def ray_head() -> Iterator[tuple[str, dict[str, str]]]:
    """A one-node Ray cluster with token authentication, started with `ray start` as a team would."""
    need_service("Ray", "install the extra: pip install 'pave[ray]'", lambda: importlib.import_module("ray"))
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    temp = Path(tempfile.mkdtemp(prefix="pjob-", dir="/tmp"))  # Ray's socket paths must stay short
    port, client_port = free_port(), free_port()
    ray = str(Path(sys.executable).parent / "ray")
    # Ray Client's server on a free port too: its default (10001) is taken by any other cluster here.
    head = [ray, "start", "--head", f"--port={port}", f"--ray-client-server-port={client_port}"]
    started = subprocess.run(
        [*head, f"--temp-dir={temp}", *COMMON],
        env=os.environ | token | RAY_START_ENV,
        capture_output=True,
        text=True,
        timeout=180,
    )
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield f"127.0.0.1:{port}", token
    finally:
        stop_ray_cluster(temp, client_port)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.ray
def test_with_job_executor_ray_the_retrain_job_runs_on_the_cluster(
    ray_head: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, token = ray_head
    server = PaveServer.up(
        tmp_path / "platform", PAVE_JOB_EXECUTOR="ray", PAVE_EXECUTOR_ADDRESS=address, **token
    )
    try:
        env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}
        env["PAVE_HOME"] = str(tmp_path / "client")
        project = tmp_path / "on-ray"
        project.mkdir()
        (project / "steps.py").write_text("import os\n\ndef hello():\n    return {'ran': 1.0}\n")
        (project / "pave.yaml").write_text(
            "name: on-ray\nsteps: [{name: hello, function: 'steps:hello'}]\n"
            "metrics: {step: hello, primary: ran}\nretrain: {timeout: 300}\n"
        )
        with server.client() as admin:
            assert admin.post("/api/v1/projects", json={"name": "on-ray"}).status_code == 201
        ran = run_pave("run", str(project), "--json", env=env, timeout=300)
        assert ran.returncode == 0, ran.stderr[-3000:]
        started = run_pave("retrain", "on-ray", env=env)
        assert started.returncode == 0, started.stderr
        turn = _finished(server, env, "on-ray")
        events = [e["event"] for e in turn["history"]]
        assert events[:3] == ["triggered", "training", "trained"], turn["error"]
        job = turn["history"][1]["job"]
        assert job["executor"] == "ray"
        assert job["ref"].startswith(f"pave-loop-{turn['id']}-")
        assert job["extra"]["node"]
        assert turn["history"][2]["metrics"] == {"ran": 1.0}
        assert turn["run_id"] != json.loads(ran.stdout)["run_id"]
    finally:
        server.stop()


@pytest.mark.ray
def test_a_control_plane_that_stops_ends_its_jobs_on_ray_and_records_them_stopped(
    ray_head: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    address, token = ray_head
    server = PaveServer.up(
        tmp_path / "platform", PAVE_JOB_EXECUTOR="ray", PAVE_EXECUTOR_ADDRESS=address, **token
    )
    try:
        env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}
        env["PAVE_HOME"] = str(tmp_path / "client")
        mark = tmp_path / "started"  # the actor runs on this machine, as this test's user
        job = _start_slow_retrain(server, tmp_path, mark, env)
        step = int(mark.read_text())
        assert job["executor"] == "ray"

        server.stop()  # SIGTERM, as `pave down` sends; it waits for the control plane to exit
        assert f"stopping Ray job {job['ref']}" in server.log.read_text()
        assert not Path(f"/proc/{step}").exists(), "the job's step outlived the control plane"
        assert processes_naming(job["folder"]) == set(), "the job outlived the control plane"

        server.start()  # the next control plane reads what the stopped job left: a stopped turn
        turn = _finished(server, env, "slow")
        assert turn["state"] == "failed", turn
        assert "the control plane that started it stopped" in turn["error"], turn["error"]
    finally:
        server.stop()
