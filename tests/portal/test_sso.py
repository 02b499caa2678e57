"""Single sign-on end to end: Chromium, a real OpenID Connect provider, a real platform.

The provider is the `oidc-provider` package from npm (pinned in tests/portal/oidc/package-lock.json,
installed with `npm ci` on first use), run by the machine's Node.js on a loopback address of its
own (127.0.0.2: another site than the platform's 127.0.0.1, as in real life). It signs in anyone
with any password and hands out the groups the test gives each account.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pave_testing import PaveServer, World, free_port, need_service, pave_env

pytestmark = pytest.mark.browser

OIDC = Path(__file__).parent / "oidc"
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
SECRET = "pave-sso-test-secret"
ACCOUNTS = {"alice": ["data-scientists", "fraud-ds"], "bob": ["strangers"]}


def _node() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are not installed")


def _install_provider() -> None:
    if (OIDC / "node_modules" / "oidc-provider").is_dir():
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=OIDC, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm ci failed: {done.stderr[-2000:]}")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    need_service("Node.js and npm", "install Node.js 20 with npm (apt-get install nodejs npm)", _node)
    need_service("oidc-provider", "run `npm ci` in tests/portal/oidc", _install_provider)
    need_service("chromium", "install Debian's chromium with `scripts/browsers` (apt-get)", CHROMIUM.stat)
    port = free_port()
    issuer = f"http://127.0.0.2:{free_port()}"
    provider = subprocess.Popen(
        [
            "node",
            "provider.mjs",
            issuer,
            f"http://127.0.0.1:{port}/signin/sso/callback",
            SECRET,
            json.dumps(ACCOUNTS),
        ],
        cwd=OIDC,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert provider.stdout is not None
        for line in provider.stdout:
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError("the OIDC provider did not start")
        home = tmp_path_factory.mktemp("pave-sso")
        env = pave_env(
            home,
            PAVE_OIDC_ISSUER=issuer,
            PAVE_OIDC_CLIENT_ID="pave",
            PAVE_OIDC_CLIENT_SECRET=SECRET,
            PAVE_OIDC_ROLES=json.dumps({"data-scientists": "maintainer"}),
        )
        server = PaveServer(home=home, port=port, env=env).start("--no-gateway")
        world = World(server)
        world.project("fraud")
        world.project("secret-stuff")
        with world.admin() as admin:
            assert admin.post("/api/v1/teams", json={"name": "fraud-ds"}).status_code == 201
            bound = admin.put("/api/v1/projects/fraud/teams/fraud-ds", json={"role": "developer"})
            assert bound.status_code == 200, bound.text
        yield {"server": server, "world": world, "issuer": issuer}
        server.stop()
    finally:
        provider.terminate()
        provider.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield found
        found.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _sso(browser: Any, server: PaveServer, account: str, start: str) -> Any:
    page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    page.goto(f"{server.url}{start}")
    assert "/signin" in page.url, page.url
    _shot(page, "40-sso-sign-in")
    page.get_by_role("link", name="Sign in with SSO").click()
    page.wait_for_url("http://127.0.0.2:*/**")
    page.fill("input[name=login]", account)
    page.fill("input[name=password]", "anything")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()  # the provider's consent
    return page


def test_sso_signs_a_person_in_to_the_mlflow_ui_the_api_docs_and_the_portal(
    platform: dict[str, Any], browser: Any
) -> None:
    server: PaveServer = platform["server"]
    page = _sso(browser, server, "alice", "/mlflow/")
    page.wait_for_url(f"{server.url}/mlflow/**")
    page.wait_for_load_state("load")
    _shot(page, "41-sso-mlflow-ui")
    assert "MLflow" in page.title()

    page.goto(f"{server.url}/api/v1/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Pave control plane" in page.inner_text(".swagger-ui .info .title")
    _shot(page, "42-sso-api-docs")

    page.goto(f"{server.url}/")
    text = page.inner_text("main")
    assert "fraud" in text, "the groups claim made alice a member of team fraud-ds, bound to project fraud"
    assert "secret-stuff" not in text
    header = page.inner_text("header")
    assert "alice" in header
    assert "maintainer" in header, "group data-scientists maps to the maintainer role"
    _shot(page, "43-sso-catalog")

    # the session is the browser's: the API itself still wants a token
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert httpx.get(f"{server.url}/api/v1/projects", cookies=cookies).status_code == 401

    world: World = platform["world"]
    with world.admin() as admin:
        members = admin.get("/api/v1/teams/fraud-ds").json()["members"]
        tokens = [t for t in admin.get("/api/v1/tokens").json() if t["identity"] == "alice"]
    assert "alice" in members
    assert [(t["name"], t["role"]) for t in tokens] == [("sso", "maintainer")]
    signed = [r for r in world.audit(identity="alice") if r["action"] == "signin"]
    assert len(signed) == 1
    assert "sso sign-in; role maintainer; teams fraud-ds" in (signed[0]["detail"] or "")


def test_a_person_whose_groups_give_no_role_is_refused(platform: dict[str, Any], browser: Any) -> None:
    server: PaveServer = platform["server"]
    page = _sso(browser, server, "bob", "/")
    page.wait_for_url(f"{server.url}/signin/sso/callback**")
    assert "none of your groups gives you a role" in page.inner_text("main")
    _shot(page, "44-sso-refused")
    page.goto(f"{server.url}/")
    assert page.url.endswith("/signin"), "no session was opened"


def test_a_forged_callback_opens_no_session(platform: dict[str, Any]) -> None:
    server: PaveServer = platform["server"]
    with httpx.Client(base_url=server.url) as client:
        started = client.get("/signin/sso")
        assert started.status_code == 303
        assert started.headers["location"].startswith(platform["issuer"])
        assert "code_challenge_method=S256" in started.headers["location"]
        forged = client.get("/signin/sso/callback", params={"code": "x", "state": "not-the-state"})
        assert forged.status_code == 401
        assert "pave_session" not in forged.headers.get("set-cookie", "")
        assert client.get("/", follow_redirects=False).status_code == 303
