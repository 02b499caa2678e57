"""The portal in a real browser (Debian's chromium driven by Playwright) against a real platform.

One journey: sign in, create a project from a template, see its run and its model card, deploy
it, compare its two runs, watch a canary on the deployment page, roll it back, find those actions
in the audit view; then a viewer sees no action buttons and a direct POST from the viewer's
session is refused.
A screenshot of each page lands in ``artifacts/screenshots/`` (kept by CI).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pave_testing import PaveServer, need_service, run_pave

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def _chromium() -> None:
    if not CHROMIUM.exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_service("chromium", "install Debian's chromium with `scripts/browsers` (apt-get)", _chromium)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield found
        found.close()


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _sign_in(browser: Any, server: PaveServer, token: str, width: int = 1200) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(f"{server.url}/")  # signed out: the portal sends the browser to /signin
    assert page.url.endswith("/signin")
    _shot(page, "00-sign-in")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/")
    return page


def test_the_portal_journey_in_a_browser(browser: Any, shared_server: PaveServer) -> None:
    server = shared_server
    name = f"web-{secrets.token_hex(3)}"
    page = _sign_in(browser, server, server.token)
    _shot(page, "01-catalog")

    # create a project from a template, as `pave new` would
    page.get_by_role("link", name="New project").click()
    page.get_by_label("Project name").fill(name)
    page.get_by_label(re.compile("tabular-classification")).check()
    _shot(page, "02-new-project")
    page.get_by_role("button", name="Create project").click()
    status = page.get_by_role("status")
    assert f"Created project {name}" in status.inner_text()
    command = page.locator("code", has_text="pave run").first.inner_text()
    folder = Path(command.removeprefix("cd ").split(" && ")[0])
    assert folder == server.home / "projects" / name

    # the next command it shows, run on the server
    env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}
    ran = run_pave("run", str(folder), env=env, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]

    page.goto(f"{server.url}/projects/{name}")
    runs = page.get_by_role("region", name="Runs")
    assert "finished" in runs.inner_text()
    assert page.locator("svg[aria-label^='Lineage']").count() == 1
    # one run: its accuracy is a point with its value, on an axis that stays within [0, 1]
    chart = page.locator("svg[aria-label='accuracy of each run, by the time it started']")
    assert chart.locator("circle").count() == 1
    ticks = [float(t) for t in chart.locator("text").all_text_contents() if re.fullmatch(r"[0-9.]+", t)]
    assert ticks
    assert max(ticks) <= 1.0
    assert page.get_by_role("link", name=re.compile("starter notebook")).count() == 1
    _shot(page, "03-project")
    page.get_by_role("link", name="v1").first.click()
    assert "Model card" in page.get_by_role("heading", level=1).inner_text()
    assert "accuracy" in page.get_by_role("region", name="Metrics against the gates").inner_text()
    _shot(page, "04-model-card")

    # deploy it, then watch a canary of a second version and roll it back
    page.get_by_role("button", name="Deploy v1").click()
    page.wait_for_url(re.compile(f"/projects/{name}/deployment"))
    assert "deployed version 1" in page.get_by_role("status").first.inner_text()
    # the canary: a second version trained with another parameter (only the changed steps re-run)
    again = run_pave("run", str(folder), "--set", "train.C=0.5", env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    candidate = "2"

    # the two runs side by side: tick them in the runs table, compare
    page.goto(f"{server.url}/projects/{name}")
    boxes = page.get_by_role("checkbox", name=re.compile("compare run"))
    assert boxes.count() >= 2
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.get_by_role("button", name="Compare selected runs").click()
    page.wait_for_url(re.compile(f"/projects/{name}/compare"))
    changed = page.get_by_role("region", name="Parameters").locator("tr.differs").all_inner_texts()
    assert any("0.5" in row for row in changed), changed  # train.C, highlighted
    metrics = page.get_by_role("region", name="Metrics")
    assert "accuracy" in metrics.locator("table").inner_text()
    assert metrics.locator("svg[aria-label$='per run'] rect").count() == 2
    _shot(page, "05a-compare-runs")

    page.goto(f"{server.url}/projects/{name}/deployment")
    page.get_by_label("Candidate version").select_option(candidate)
    page.get_by_label("Steps (% of traffic)").fill("10,50,100")
    page.get_by_label("Seconds per step").fill("3600")
    page.get_by_role("button", name="Start rollout").click()
    page.wait_for_url(re.compile("done="))
    split = page.locator("figure", has=page.locator("svg[aria-label='traffic split']"))
    assert f"version {candidate} 10%" in split.inner_text()
    sent = _predict(server, name, folder, candidate, 40)
    deadline = time.monotonic() + 60  # the gateway writes its inference log in the background
    while f"{sent} requests in the last hour" not in page.locator("#live").inner_text():
        assert time.monotonic() < deadline, page.locator("#live").inner_text()[:500]
        time.sleep(1)
        page.reload()
    rate = page.locator("svg[aria-label^='requests per minute']")
    per_minute = [t.split(": ")[1].split(" at ")[0] for t in rate.locator("circle title").all_text_contents()]
    assert sum(float(n) for n in per_minute) == sent  # a point per minute, its count on hover
    assert rate.locator("polyline").count() == (1 if len(per_minute) > 1 else 0)
    assert f"Rolling out v{candidate}" in page.locator(".rollout").inner_text()
    waiting = page.locator(".rollout-wait").inner_text()  # a canary that has not moved says why
    assert "s more of the 3600 s a step lasts" in waiting
    _shot(page, "05-deployment-canary")
    page.get_by_label("Reason").fill("seen enough")
    page.get_by_role("button", name="Roll back").click()
    page.wait_for_url(re.compile("done=rolled"))
    assert "version 1 100%" in split.inner_text()
    assert "rolled back" in page.get_by_role("region", name="Rollout history").inner_text()
    _shot(page, "06-deployment-rolled-back")

    # those actions in the audit view
    page.goto(f"{server.url}/audit?project={name}")
    trail = page.locator("table").inner_text()
    for action in ("deploy", "rollout", "rollback"):
        assert f"POST /projects/{name}/{action}" in trail
    assert "Chain verified" in page.get_by_role("status").inner_text()
    _shot(page, "07-audit")
    page.goto(f"{server.url}/platform")
    assert page.get_by_role("heading", name="Platform").count() == 1
    _shot(page, "08-platform")
    page.context.close()

    # a viewer: no buttons, and a direct POST from the viewer's session is refused
    with server.client() as admin:
        viewer = admin.post("/api/v1/tokens", json={"identity": "vivian", "name": "web", "role": "viewer"})
        admin.put(f"/api/v1/projects/{name}/members/vivian", json={"role": "viewer"})
    page = _sign_in(browser, server, viewer.json()["secret"], width=390)  # a phone
    assert page.get_by_role("link", name="New project").count() == 0
    page.goto(f"{server.url}/projects/{name}/deployment")
    assert page.get_by_role("button").all_inner_texts() == ["Sign out"]
    _shot(page, "09-viewer-deployment-narrow")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    refused = page.request.post(
        f"{server.url}/projects/{name}/rollback", form={"csrf": csrf or ""}, max_redirects=0
    )
    assert refused.status == 403
    # refused by the permission table before the project is looked at: the record names the path
    denied = [r for r in _audit(server, identity="vivian") if r["outcome"] == "denied"]
    assert [(r["path"], r["outcome"]) for r in denied] == [(f"/projects/{name}/rollback", "denied")]
    page.context.close()


def _predict(server: PaveServer, name: str, folder: Path, candidate: str, count: int) -> int:
    """Send ``count`` predictions through the gateway once it serves both versions."""
    import httpx
    import pandas as pd

    gateway = server.wait_gateway()
    deadline = time.monotonic() + 180
    for version in ("1", candidate):
        url = f"{gateway}/v2/models/{name}/versions/{version}/ready"
        while httpx.get(url, headers=server.gateway_headers, timeout=5).status_code != 200:
            assert time.monotonic() < deadline, f"the gateway never served version {version}"
            time.sleep(0.5)
    rows = pd.read_csv(folder / "data" / "train.csv").drop(columns=["target"]).head(2)
    body = {
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(rows)], "data": rows[c].astype(float).tolist()}
            for c in rows.columns
        ]
    }
    with httpx.Client(timeout=30, headers=server.gateway_headers) as client:
        for _ in range(count):
            assert client.post(f"{gateway}/v2/models/{name}/infer", json=body).status_code == 200
    return count


def _audit(server: PaveServer, **filters: str) -> list[dict[str, Any]]:
    with server.client() as admin:
        rows: list[dict[str, Any]] = admin.get("/api/v1/audit", params={**filters, "limit": 1000}).json()
    return rows
