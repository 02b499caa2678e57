"""Browsers never meet a JSON 401: the MLflow UI and the API docs send a signed-out browser to the
sign-in page and take the portal's session; programs still get the JSON 401."""

from __future__ import annotations

import re

import pytest
from portal_kit import Portal, csrf_of

HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.mark.parametrize("path", ["/mlflow/", "/mlflow", "/api/v1/docs"])
def test_a_signed_out_browser_is_sent_to_sign_in_and_back(portal: Portal, path: str) -> None:
    browser = portal.browser()
    answer = browser.get(path, headers=HTML)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/signin?next={path}"
    page = browser.get(answer.headers["location"])
    assert f'name="next" value="{path}"' in page.text
    signed = browser.post(
        "/signin",
        data={"csrf": csrf_of(page.text), "token": portal.admin_token, "next": path},
        follow_redirects=False,
    )
    assert (signed.status_code, signed.headers["location"]) == (303, path)
    opened = browser.get(path, headers=HTML, follow_redirects=True)
    assert opened.status_code == 200
    assert "text/html" in opened.headers["content-type"]


@pytest.mark.parametrize(
    "path", ["/mlflow/ajax-api/2.0/mlflow/experiments/search", "/api/v1/projects", "/api/v1/openapi.json"]
)
def test_programs_still_get_a_json_401(portal: Portal, path: str) -> None:
    answer = portal.browser().get(path)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"


def test_the_api_docs_load_their_assets_from_the_platform(portal: Portal) -> None:
    browser = portal.signed_in(portal.admin_token)
    page = browser.get("/api/v1/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, page.text
    assert all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    for asset in ("/api/v1/docs/assets/swagger-ui-bundle.js", "/api/v1/docs/assets/swagger-ui.css"):
        got = browser.get(asset)
        assert got.status_code == 200
        assert len(got.content) > 10_000
    assert browser.get("/api/v1/openapi.json").json()["info"]["title"] == "Pave control plane"
    # the session opens the docs, never the API itself
    assert browser.get("/api/v1/projects").status_code == 401


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "%2F%2Fevil.example", "javascript:x"],
)
def test_sign_in_never_sends_the_browser_to_another_site(portal: Portal, target: str) -> None:
    browser = portal.browser()
    page = browser.get("/signin", params={"next": target})
    assert 'name="next" value="/"' in page.text
    signed = browser.post(
        "/signin",
        data={"csrf": csrf_of(page.text), "token": portal.admin_token, "next": target},
        follow_redirects=False,
    )
    assert (signed.status_code, signed.headers["location"]) == (303, "/")
