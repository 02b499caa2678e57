"""Shared nothing, end to end: hosts that share only PostgreSQL, an S3-compatible store and HTTP.

A control plane, two gateways and two clients, each on a home of its own and in a network
namespace of its own (on a private bridge; on loopback, with a warning, where namespaces cannot be
made), each run under strace (every file-name system call, by every thread and child).
PostgreSQL is the machine's, forwarded onto the bridge; the object store is moto's standalone S3
server, started by the test on the bridge. The walk:

client A ``pave new`` + ``pave run`` -> ``pave deploy`` (served by both gateways, whose real URLs
it prints) -> predictions on both -> feedback by inference id for answers of either -> a drift
alert from the answers of both -> client B, which never saw the project, reproduces
A's run with identical metrics -> the source changes -> a data-change retrain as an isolated job
-> rollout. Then the traces prove that no process touched another's home.

`pave run` records its run (never its folder) for retraining, and client B reproduces from the
run's code snapshot. Then the project's source (a file the test serves over HTTP, in no host's
home) changes: the control plane's data-change check retrains A's run as an isolated job on its
host (traced with it), which reads the new data and starts a rollout. No process looks at a path
in another's home.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
import yaml

from pave_testing import S3Server, free_port, need_service, pave_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1200)]
NAME = "nothing"
SHIFTED = "mean_radius"
_PATH = re.compile(r'"(/[^"]*)"')


def _wait(condition: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


class Host:
    """One role on a home of its own; every command it runs is traced to ``traces/<name>-N``."""

    def __init__(
        self, root: Path, name: str, shared: dict[str, str], place: tuple[str, list[str]] = ("127.0.0.1", [])
    ) -> None:
        self.name = name
        self.address, self._netns = place  # its address, and `ip netns exec NS` when it has a namespace
        self.home = root / name
        self.home.mkdir()
        self.traces = root / "traces"
        self.traces.mkdir(exist_ok=True)
        self.env = pave_env(self.home, **shared)
        self.processes: list[subprocess.Popen[bytes]] = []
        self._n = 0

    def _traced(self, *args: str) -> list[str]:
        self._n += 1
        out = self.traces / f"{self.name}-{self._n}"
        strace = ["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=%file", "-o", str(out)]
        return [*self._netns, *strace, sys.executable, "-m", "pave", *args]

    def start(self, *args: str) -> None:
        with (self.traces / f"{self.name}.log").open("ab") as log:
            self.processes.append(
                subprocess.Popen(self._traced(*args), env=self.env, stdout=log, stderr=subprocess.STDOUT)
            )

    def pave(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._traced(*args),
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        """SIGTERM to each traced pave process (strace detaches, not stops, on its own SIGTERM)."""
        for process in self.processes:
            if process.poll() is not None:
                continue
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            with contextlib.suppress(OSError, ValueError):
                for pid in children.read_text().split():
                    os.kill(int(pid), signal.SIGTERM)
            try:
                process.wait(timeout=60)  # strace ends when what it traces has ended
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError, ValueError):
                    for pid in children.read_text().split():
                        os.kill(int(pid), signal.SIGKILL)
                process.kill()

    def touched(self) -> set[str]:
        """Every path a traced process of this host named in a file system call."""
        paths: set[str] = set()
        for trace in self.traces.glob(f"{self.name}-*"):
            for line in trace.read_text(errors="replace").splitlines():
                paths.update(_PATH.findall(line))
        return paths


class Network:
    """Each host in a network namespace of its own, on a private bridge (10.231.X.0/24) with the
    test's process at .1; PostgreSQL, which listens on loopback only, is forwarded there. Where
    namespaces cannot be made (no CAP_NET_ADMIN), every host stays on loopback and ``reason`` says
    why."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(2)
        self.subnet = f"10.231.{secrets.randbelow(200) + 20}"
        self.bridge = f"pvb{self.tag}"
        self.gateway = f"{self.subnet}.1"
        self.namespaces: list[str] = []
        self.reason = ""
        self.enabled = False
        self._stop = threading.Event()
        self._listener: socket.socket | None = None

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)

    def up(self) -> None:
        try:
            self._ip("link", "add", self.bridge, "type", "bridge")
            self._ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            self._ip("link", "set", self.bridge, "up")
        except (OSError, subprocess.CalledProcessError) as exc:
            self.reason = f"no network namespaces here ({getattr(exc, 'stderr', '') or exc})".strip()
            self.down()
            return
        self.enabled = True

    def place(self, name: str) -> tuple[str, list[str]]:
        """A namespace for host ``name``: its address and the command prefix that runs in it."""
        if not self.enabled:
            return "127.0.0.1", []
        n = len(self.namespaces) + 2
        ns, veth = f"pave{self.tag}{n}", f"pv{self.tag}{n}"
        self._ip("netns", "add", ns)
        self.namespaces.append(ns)
        self._ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        self._ip("link", "set", f"{veth}p", "netns", ns)
        self._ip("link", "set", veth, "master", self.bridge)
        self._ip("link", "set", veth, "up")
        inside = ["netns", "exec", ns, "ip"]
        self._ip(*inside, "addr", "add", f"{self.subnet}.{n}/24", "dev", f"{veth}p")
        self._ip(*inside, "link", "set", f"{veth}p", "up")
        self._ip(*inside, "link", "set", "lo", "up")
        return f"{self.subnet}.{n}", ["ip", "netns", "exec", ns]

    def forward(self, target: tuple[str, int]) -> tuple[str, int]:
        """Forward a port of the bridge address to ``target`` (a service on loopback)."""
        if not self.enabled:
            return target
        listener = socket.create_server((self.gateway, 0))
        self._listener = listener

        def pump(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        def serve() -> None:
            while not self._stop.is_set():
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                upstream = socket.create_connection(target)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=pump, args=(a, b), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return self.gateway, listener.getsockname()[1]

    def down(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        for ns in self.namespaces:  # their veths go with them
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)


class Lake:
    """The team's data, outside every host's home: files served over plain HTTP (Last-Modified and
    size, which the control plane's data-change check compares) on the bridge's address."""

    def __init__(self, root: Path, address: str) -> None:
        self.folder = root / "lake"
        self.folder.mkdir()
        folder = str(self.folder)

        class Files(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=folder, **kwargs)

            def log_message(self, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer((address, 0), Files)
        self.address = address
        self.url = f"http://{address}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def network() -> Iterator[Network]:
    made = Network()
    made.up()
    yield made
    made.down()


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[list[Host]]:
    made: list[Host] = []
    yield made
    for host in reversed(made):
        host.stop()


def _body(rows: pd.DataFrame, request_id: str) -> dict[str, Any]:
    return {
        "id": request_id,
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(rows)], "data": rows[c].astype(float).tolist()}
            for c in rows.columns
        ],
    }


def test_a_project_walks_from_client_to_two_gateways_and_back_on_hosts_that_share_nothing(
    postgres_url: str, s3_server: S3Server, tmp_path: Path, network: Network, hosts: list[Host]
) -> None:
    def has_strace() -> None:
        if shutil.which("strace") is None:
            raise FileNotFoundError("strace")

    need_service("strace", "install it with scripts/tools (apt-get install strace)", has_strace)
    if not network.enabled:
        warnings.warn(f"every host on loopback: {network.reason}", stacklevel=1)
    # PostgreSQL listens on loopback: the namespaces reach it through the bridge
    db = urlsplit(postgres_url)
    db_host, db_port = network.forward((db.hostname or "127.0.0.1", db.port or 5432))
    database_url = postgres_url.replace(
        db.netloc, db.netloc.replace(f"{db.hostname}:{db.port}", f"{db_host}:{db_port}")
    )
    s3 = s3_server
    if network.enabled:  # an S3 server of its own, on the bridge
        s3 = S3Server.start(network.gateway)
    shared_store = s3.env | {
        "PAVE_DATABASE_URL": database_url,
        "PAVE_ARTIFACT_ROOT": f"s3://{s3.bucket()}/pave",
    }
    try:
        _walk(tmp_path, network, hosts, shared_store)
    finally:
        if s3 is not s3_server:
            s3.stop()


def _walk(tmp_path: Path, network: Network, hosts: list[Host], shared_store: dict[str, str]) -> None:
    lake = Lake(tmp_path, network.gateway if network.enabled else "127.0.0.1")
    try:
        _walk_on(tmp_path, network, hosts, shared_store, lake)
    finally:
        lake.stop()


def _walk_on(
    tmp_path: Path, network: Network, hosts: list[Host], shared_store: dict[str, str], lake: Lake
) -> None:
    place = network.place("control-plane")
    control = Host(tmp_path, "control-plane", shared_store, place)
    control.env |= {
        "PAVE_HOST": control.address,
        "PAVE_ALLOWED_HOSTS": json.dumps([control.address]),
        # the data-change check may reach the lake (a private address), every second
        "PAVE_EGRESS_ALLOWED_NETWORKS": json.dumps([f"{lake.address}/32"]),
        "PAVE_SOURCE_CHECK_INTERVAL": "1",
    }
    hosts.append(control)
    port = free_port()
    control.start("up", "--no-gateway", "--port", str(port))
    url = f"http://{control.address}:{port}"
    _wait(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, "the control plane")
    _wait(lambda: (control.home / "credentials.json").exists(), "the first admin token")
    token = json.loads((control.home / "credentials.json").read_text())["token"]
    auth = {"Authorization": f"Bearer {token}"}

    gateways = []
    for n in (1, 2):
        gateway = Host(tmp_path, f"gateway-{n}", shared_store, network.place(f"gateway-{n}"))
        gateway.env |= {
            "PAVE_GATEWAY_HOST": gateway.address,
            "PAVE_ALLOWED_HOSTS": json.dumps([gateway.address]),
            "PAVE_GATEWAY_PUBLIC_URL": f"http://{gateway.address}:{gateway.env['PAVE_GATEWAY_PORT']}",
        }
        gateway.start("serve")
        hosts.append(gateway)
        gateways.append(gateway)
    # clients know only the platform's URL and a token: no database, no object store, no AWS keys
    client = {"PAVE_URL": url, "PAVE_TOKEN": token}
    alice = Host(tmp_path, "client-a", client, network.place("client-a"))
    bob = Host(tmp_path, "client-b", client, network.place("client-b"))
    hosts.extend([alice, bob])

    # client A: a new project with a drift monitor, run once
    project = alice.home / NAME
    made = alice.pave("new", NAME, "-t", "tabular-classification", "--dir", str(project))
    assert made.returncode == 0, made.stderr[-3000:]
    spec = yaml.safe_load((project / "pave.yaml").read_text())
    spec["monitor"] = {
        "schedule": "1s",
        "on_alert": "notify",
        "monitors": [
            {"name": "inputs", "type": "drift", "method": "psi", "features": [SHIFTED], "window": "10m"}
        ],
    }
    # the training data lives in the team's lake, not in the project: a change there retrains
    shutil.move(project / "data" / "train.csv", lake.folder / "train.csv")
    spec["data"]["sources"]["train"] = {"url": f"{lake.url}/train.csv"}
    spec["gates"] = [{"metric": "roc_auc", "min": 0.9}]
    spec["retrain"] = {"on": ["data_change"], "rollout": {"steps": [50, 100], "interval_seconds": 3600}}
    (project / "pave.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    ran = alice.pave("run", str(project), "--json")
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout)

    # deploy: served by both gateways, at the URLs they registered
    urls = [g.env["PAVE_GATEWAY_PUBLIC_URL"] for g in gateways]
    with httpx.Client(base_url=url, headers=auth, timeout=30) as api:
        _wait(
            lambda: (
                {p["url"] for p in api.get("/api/v1/platform/processes").json() if p["healthy"]} >= set(urls)
            ),
            "the gateways did not register",
        )
    deployed = alice.pave("deploy", NAME, "--version", str(result["model_version"]))
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    for gateway_url in urls:
        assert f"infer: POST {gateway_url}/v2/models/{NAME}/infer" in deployed.stdout, deployed.stdout

    # predictions on both, on drifted inputs (one feature far off what the model learnt)
    table = pd.read_csv(lake.folder / "train.csv")
    frame = table.drop(columns=["target"])
    drifted = frame.assign(**{SHIFTED: frame[SHIFTED] + 10 * frame[SHIFTED].std()})
    answered: list[str] = []
    with httpx.Client(headers=auth, timeout=30) as http:
        for gateway_url in urls:
            infer = f"{gateway_url}/v2/models/{NAME}/infer"
            _wait(
                lambda i=infer: http.post(i, json=_body(drifted.head(1), "warm")).status_code == 200, "served"
            )
            for i in range(30):
                request_id = f"{gateway_url.rsplit(':', 1)[1]}-{i}"
                response = http.post(infer, json=_body(drifted.iloc[i * 5 : i * 5 + 5], request_id))
                assert response.status_code == 200, response.text
                answered.append(request_id)

    with httpx.Client(base_url=url, headers=auth, timeout=120) as api:
        # A's run is what retrains re-run: recorded by its id (its snapshot is in the store), no folder
        source = api.get(f"/api/v1/projects/{NAME}/loop").json()["source"]
        assert source["run_id"] == result["run_id"], source
        assert "directory" not in source
        # feedback by inference id, for the answers of either gateway
        posted = api.post(
            "/api/v1/feedback",
            json={"items": [{"inference_id": i, "label": [0, 1, 0, 1, 0]} for i in answered]},
        )
        assert posted.status_code in (200, 201), posted.text
        assert posted.json()["created"] == len(answered)
        # a drift alert, from the answers of both gateways shipped through the object store
        _wait(
            lambda: any(SHIFTED in json.dumps(a) for a in api.get(f"/api/v1/projects/{NAME}/alerts").json()),
            "no drift alert",
        )

    # client B never saw the project: it reproduces A's run from the platform alone
    reproduced = bob.pave("reproduce", result["run_id"])
    assert reproduced.returncode == 0, reproduced.stderr[-3000:]
    assert "identical metrics" in reproduced.stdout, reproduced.stdout[-3000:]

    # the source changes -> the control plane's check sees it -> a retrain of A's recorded run as an
    # isolated job on its host (the snapshot in a fresh folder, a project-scoped token, another
    # account), which reads the new data -> a rollout
    with httpx.Client(base_url=url, headers=auth, timeout=120) as api:
        assert api.get(f"/api/v1/projects/{NAME}/loop").json()["runs"] == [], "nothing changed yet"
        time.sleep(1.1)  # Last-Modified has a resolution of a second
        pd.concat([table, table.head(20)]).to_csv(lake.folder / "train.csv", index=False)

        def turn() -> dict[str, Any]:
            runs: list[dict[str, Any]] = api.get(f"/api/v1/projects/{NAME}/loop").json()["runs"]
            return runs[0] if runs else {"state": "queued"}

        _wait(lambda: turn()["state"] not in ("queued", "starting", "training"), "the retrain", 600)
        retrained = turn()
    assert retrained["trigger"] == "data_change", retrained
    events = [e["event"] for e in retrained["history"]]
    assert events[:5] == ["triggered", "data_changed", "training", "trained", "rolling_out"], retrained
    retrained["history"] = [e for e in retrained["history"] if e["event"] != "data_changed"]
    assert retrained["history"][1]["run"] == result["run_id"]
    job = retrained["history"][1]["job"]
    assert job["executor"] == "local"
    if os.geteuid() == 0:
        assert job["user"] == "nobody"

    for host in hosts:  # the processes still run: stop them so their traces are complete
        host.stop()
    homes = {host.name: str(host.home) for host in hosts}
    foreign = {
        (host.name, path)
        for host in hosts
        for path in host.touched()
        for other, home in homes.items()
        if other != host.name and (path == home or path.startswith(home + "/"))
    }
    assert not foreign, f"a process touched another's home: {sorted(foreign)[:10]}"
