"""`pave up` -> status -> tokens -> down, through the CLI as a user runs it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pave_testing import PaveServer, run_pave

pytestmark = pytest.mark.slow


def test_token_lifecycle_and_status(pave_server_factory: Callable[..., PaveServer]) -> None:
    server = pave_server_factory()
    env = server.env | {"PAVE_PORT": str(server.port)}
    assert (server.home / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert server.token.startswith("pave_")
    assert server.token in server.log.read_text(), "the first token is printed once"

    status = run_pave("status", env=env)
    assert status.returncode == 0, status.stderr
    assert "ready" in status.stdout

    created = run_pave("token", "create", "ci-bot", "--name", "ci", "--role", "viewer", "--service", env=env)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("pave_")
    listed = run_pave("token", "list", env=env)
    assert "ci-bot" in listed.stdout
    assert secret not in listed.stdout, "secrets are never listed"
    viewer_env = env | {"PAVE_TOKEN": secret}
    assert run_pave("projects", env=viewer_env).returncode == 0
    denied = run_pave("token", "list", env=viewer_env)
    assert denied.returncode == 4  # refused
    assert "needs 'admin'" in denied.stderr

    revoked = run_pave("token", "revoke", "2", env=env)
    assert revoked.returncode == 0, revoked.stderr
    refused = run_pave("projects", env=viewer_env)
    assert refused.returncode == 4  # refused
    assert "revoked or expired" in refused.stderr

    shown = run_pave("config", "show", "--json", env=env)
    assert '"port": "' in shown.stdout

    down = run_pave("down", env=env)
    assert down.returncode == 0, down.stderr
    assert server.process is not None
    assert server.process.wait(timeout=30) == 0
    assert "stopped" in run_pave("status", env=env).stdout


def test_token_bootstrap_recovers_a_lost_admin_token(pave_server_factory: Callable[..., PaveServer]) -> None:
    server = pave_server_factory()
    old = server.token
    (server.home / "credentials.json").write_text("garbage")
    result = run_pave("token", "bootstrap", env=server.env | {"PAVE_PORT": str(server.port)})
    assert result.returncode == 0, result.stderr
    assert server.token != old
    with server.client() as client:
        assert client.get("/api/v1/whoami").json()["is_admin"] is True


@pytest.mark.timeout(600)
def test_up_demo_seeds_a_deployed_model_with_traffic(pave_server_factory: Callable[..., PaveServer]) -> None:
    import time

    server = pave_server_factory(None, None, "--demo")
    deadline = time.monotonic() + 420
    versions: list[dict[str, object]] = []
    with server.client() as client:
        while time.monotonic() < deadline and not (versions and versions[0]["aliases"]):
            response = client.get("/api/v1/projects/demo-churn/models")
            versions = response.json() if response.status_code == 200 else []
            time.sleep(1)
    log = (server.home / "logs" / "demo.log").read_text() if (server.home / "logs").exists() else ""
    assert versions, f"no demo model version after 420 s; demo.log:\n{log[-3000:]}"
    assert versions[0]["aliases"] == ["candidate"]
    demo_log = server.home / "logs" / "demo.log"
    while time.monotonic() < deadline and "predictions answered" not in demo_log.read_text():
        time.sleep(1)
    assert "demo: 300 of 300 predictions answered by the gateway" in demo_log.read_text(), (
        demo_log.read_text()[-3000:]
    )
    with server.client() as client:
        [deployment] = client.get("/api/v1/deployments").json()
    assert deployment["name"] == "demo-churn"
    assert [v["version"] for v in deployment["spec"]["versions"]] == ["1"]
