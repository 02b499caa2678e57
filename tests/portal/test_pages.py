"""The portal in-process (no browser): sign-in, sessions, CSRF, roles, escaping, empty pages."""

from __future__ import annotations

import re

import pytest
from portal_kit import Portal, csrf_of

from pave.governance.access import set_member
from pave.governance.tokens import revoke_token
from pave.store.db import transaction
from pave.store.tables import AuditEvent, DeploymentRow, IncidentRow, Project

PAGES = ("/", "/platform", "/audit", "/new", "/incidents")


def test_pages_need_a_session_and_the_sign_in_page_sets_a_strict_cookie(portal: Portal) -> None:
    browser = portal.browser()
    for path in PAGES:
        answer = browser.get(path)
        back = "/signin" if path == "/" else f"/signin?next={path}"
        assert (answer.status_code, answer.headers["location"]) == (303, back)
    page = browser.get("/signin")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    wrong = browser.post("/signin", data={"csrf": csrf_of(page.text), "token": "pave_not-a-token"})
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    answer = browser.post(
        "/signin",
        data={"csrf": csrf_of(page.text), "token": portal.admin_token},
        follow_redirects=False,
    )
    cookie = answer.headers["set-cookie"].lower()
    assert "pave_session=" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert browser.get("/").status_code == 200
    # the API never takes the cookie: API clients send their token
    assert browser.get("/api/v1/projects").status_code == 401


def test_sign_in_without_the_form_token_is_refused(portal: Portal) -> None:
    answer = portal.browser().post("/signin", data={"token": portal.admin_token})
    assert answer.status_code == 403


def test_every_page_answers_on_an_empty_platform(portal: Portal) -> None:
    admin = portal.signed_in(portal.admin_token)
    for path in PAGES:
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.text[-500:])
    assert "No projects yet" in admin.get("/").text
    for path in ("/projects/nope", "/projects/nope/deployment", "/projects/nope/models/1"):
        answer = admin.get(path)
        assert answer.status_code == 404, (path, answer.text[-500:])
        assert "does not exist" in answer.text
    assert admin.get("/api/v1/platform/metrics").status_code == 401  # the API wants a token


def test_user_supplied_names_render_as_text(portal: Portal) -> None:
    evil = "<script>alert(1)</script>"
    with transaction(portal.sessions) as session:
        session.add(
            Project(
                name=evil,
                owner='"><img src=x onerror=alert(2)>',
                description=evil,
                created_by="test",
                labels={},
            )
        )
    admin = portal.signed_in(portal.admin_token)
    html = admin.get("/").text
    assert evil not in html
    assert "onerror=alert(2)>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert admin.get("/", params={"q": evil}).text.count("&lt;script&gt;") >= 1
    audit = admin.get("/audit", params={"q": evil}).text
    assert evil not in audit


def test_forms_without_the_session_csrf_token_are_refused(portal: Portal) -> None:
    admin = portal.signed_in(portal.admin_token)
    for data in ({}, {"csrf": "forged"}):
        answer = admin.post("/new", data={**data, "name": "nope", "template": "tabular-regression"})
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    with portal.sessions() as session:
        assert session.query(Project).filter_by(name="nope").first() is None


def test_a_viewer_sees_no_buttons_and_a_direct_post_is_refused_and_audited(portal: Portal) -> None:
    with transaction(portal.sessions) as session:
        session.add(Project(name="watched", owner="olga", description="", created_by="olga", labels={}))
        session.flush()
        set_member(session, "watched", "vic", "viewer", granted_by="olga")
        session.add(
            DeploymentRow(
                name="watched",
                project="watched",
                spec={"name": "watched", "versions": [{"version": "1", "uri": "/x", "weight": 100.0}]},
                created_by="olga",
                updated_by="olga",
            )
        )
    admin = portal.signed_in(portal.admin_token)
    actions = re.compile(r'action="/projects/watched/\w+"')
    assert actions.search(admin.get("/projects/watched/deployment").text)  # an admin has buttons
    assert 'href="/new"' in admin.get("/").text
    viewer = portal.signed_in(portal.token("vic", "viewer"))
    home = viewer.get("/").text
    assert "watched" in home
    assert 'href="/new"' not in home
    refused_page = viewer.get("/new", headers={"accept": "text/html"})
    assert refused_page.status_code == 403
    assert refused_page.headers["content-type"].startswith("text/html")  # a page for a person
    assert "Back to the catalog" in refused_page.text
    page = viewer.get("/projects/watched/deployment")
    assert page.status_code == 200
    assert not actions.search(page.text)
    assert not actions.search(viewer.get("/projects/watched").text)
    csrf = csrf_of(page.text)  # the sign-out form's: a valid token of this session
    refused = viewer.post("/projects/watched/rollback", data={"csrf": csrf})
    assert refused.status_code == 403
    with portal.sessions() as session:
        last = session.query(AuditEvent).order_by(AuditEvent.seq.desc()).first()
    assert last is not None
    assert (last.identity, last.path, last.project, last.outcome, last.status) == (
        "vic",
        "/projects/watched/rollback",
        "watched",
        "denied",
        403,
    )


def test_a_maintainer_token_without_a_role_on_the_project_is_refused(portal: Portal) -> None:
    with transaction(portal.sessions) as session:
        session.add(Project(name="not-mine", owner="olga", description="", created_by="olga", labels={}))
    mallory = portal.signed_in(portal.token("mallory", "maintainer"))
    assert mallory.get("/projects/not-mine").status_code == 403
    page = mallory.get("/")
    assert "not-mine" not in page.text
    answer = mallory.post("/projects/not-mine/deploy", data={"csrf": csrf_of(page.text), "version": "1"})
    assert answer.status_code == 403
    with portal.sessions() as session:
        last = session.query(AuditEvent).order_by(AuditEvent.seq.desc()).first()
    assert last is not None
    assert (last.identity, last.project, last.outcome) == (
        "mallory",
        "not-mine",
        "denied",
    )


def test_an_approver_who_is_not_the_author_approves_from_the_model_card(portal: Portal) -> None:
    from mlflow.tracking import MlflowClient

    with transaction(portal.sessions) as session:
        session.add(Project(name="vetted", owner="olga", description="", created_by="olga", labels={}))
        session.flush()
        set_member(session, "vetted", "ann", "approver", granted_by="olga")
        set_member(session, "vetted", "dora", "approver", granted_by="olga")
    url = portal.settings.mlflow_db_url
    mlflow = MlflowClient(tracking_uri=url, registry_uri=url)
    mlflow.create_registered_model("vetted")
    version = mlflow.create_model_version("vetted", f"{portal.settings.artifacts}/vetted/1").version
    mlflow.set_model_version_tag("vetted", version, "pave.author", "dora")
    mlflow.set_model_version_tag("vetted", version, "pave.gates", "passed")
    card_url = f"/projects/vetted/models/{version}"
    approve = re.compile(rf'action="/projects/vetted/models/{version}/approve"')

    author = portal.signed_in(portal.token("dora", "approver"))
    assert not approve.search(author.get(card_url).text)  # nobody approves their own version
    ann = portal.signed_in(portal.token("ann", "approver"))
    card = ann.get(card_url).text
    assert approve.search(card)
    answer = ann.post(f"{card_url}/approve", data={"csrf": csrf_of(card), "comment": "checked <b>it</b>"})
    assert answer.status_code == 303, answer.text
    card = ann.get(card_url).text
    assert "approved by ann" in card
    assert "checked &lt;b&gt;it&lt;/b&gt;" in card
    assert not approve.search(card)  # approved once
    again = ann.post(f"{card_url}/approve", data={"csrf": csrf_of(card)})
    assert again.status_code == 409  # approved already: refused, the first approval stands
    assert mlflow.get_model_version("vetted", version).tags["pave.approval.by"] == "ann"


@pytest.mark.parametrize("how", ["revoke", "sign-out"])
def test_a_session_dies_with_its_token_and_on_sign_out(portal: Portal, how: str) -> None:
    secret = portal.token(f"dora-{how}", "developer")
    browser = portal.signed_in(secret)
    page = browser.get("/")
    assert page.status_code == 200
    if how == "revoke":
        with transaction(portal.sessions) as session:
            from pave.governance.tokens import authenticate

            revoke_token(session, authenticate(session, secret).token_id)
    else:
        assert browser.post("/signout", data={"csrf": csrf_of(page.text)}).status_code == 303
    answer = browser.get("/")
    assert (answer.status_code, answer.headers["location"]) == (303, "/signin")


def test_every_portal_route_has_a_rule_and_forms_need_more_than_read() -> None:
    from fastapi.routing import APIRoute

    from pave.governance.permissions import PUBLIC, required_action
    from pave.portal.routes import router

    seen = {}
    for route in router.routes:
        assert isinstance(route, APIRoute)
        path = re.sub(r"\{[^}]+\}", "p", route.path.replace("{kind}", "css"))
        for method in route.methods:
            seen[f"{method} {path}"] = required_action(method, path)
    assert None not in seen.values(), seen
    assert {k for k, v in seen.items() if v == PUBLIC} == {
        "GET /signin",
        "POST /signin",
        "GET /signin/sso",
        "GET /signin/sso/callback",
        "GET /static/portal.css",
    }
    assert seen["POST /projects/p/rollback"] == "deploy"
    assert seen["POST /projects/p/models/p/approve"] == "approve"
    assert seen["POST /new"] == "write"
    assert seen["GET /audit"] == "admin"


def test_platform_numbers_in_the_api_and_in_metrics(portal: Portal) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {portal.admin_token}"}
    with portal.sessions() as session:
        projects = session.query(Project).count()
    numbers = httpx.get(f"{portal.server.url}/api/v1/platform/metrics", headers=headers, timeout=60).json()
    assert numbers["projects"] == projects
    assert len(numbers["runs_by_week"]) == 12
    scraped = httpx.get(f"{portal.server.url}/metrics", headers=headers, timeout=60).text
    assert f"pave_platform_projects {float(projects)}" in scraped
    assert "pave_platform_change_failure_ratio" in scraped


def test_the_session_opens_the_mlflow_ui_the_portal_links_to(portal: Portal) -> None:
    admin = portal.signed_in(portal.admin_token)
    assert admin.get("/mlflow/").status_code == 200
    search = admin.post("/mlflow/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 10})
    assert search.status_code == 200, search.text
    signed_out = portal.browser()
    assert signed_out.get("/mlflow/").status_code == 401
    forged = signed_out.post(
        "/mlflow/ajax-api/2.0/mlflow/experiments/create",
        json={"name": "forged"},
        headers={"Origin": "https://evil.example"},
        cookies={"pave_session": admin.cookies["pave_session"]},
    )
    assert forged.status_code == 403  # another site's page cannot use the session


def test_the_incident_page_lists_one_line_per_episode_to_those_who_may_read_it(portal: Portal) -> None:
    with transaction(portal.sessions) as session:
        session.add(Project(name="inc-proj", owner="olga", created_by="olga"))
        features = [f"f{i:02d}" for i in range(30)]
        session.add(
            IncidentRow(
                project="inc-proj",
                deployment="inc-proj",
                monitor="inputs",
                kind="drift",
                dedup_key="pave/inc-proj/inc-proj/inputs/drift",
                severity="warning",
                status="open",
                subjects=features,
                ever=features,
                details={},
            )
        )
    admin = portal.signed_in(portal.admin_token).get("/incidents").text
    assert "inc-proj" in admin
    assert "30:" in admin
    assert "f00, f01" in admin
    assert "and 22 more" in admin
    outsider = portal.signed_in(portal.token("ivan", "viewer")).get("/incidents")
    assert outsider.status_code == 200
    assert "inc-proj" not in outsider.text  # no role on the project: not listed


def test_the_model_card_shows_fairness_and_global_importances(portal: Portal) -> None:
    import json
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    with transaction(portal.sessions) as session:
        session.add(Project(name="carded", owner="olga", description="", created_by="olga", labels={}))
    url = portal.settings.mlflow_db_url
    mlflow = MlflowClient(tracking_uri=url, registry_uri=url)
    experiment = mlflow.create_experiment(
        "carded", artifact_location=f"{portal.settings.artifacts}/mlflow/carded"
    )
    run = mlflow.create_run(experiment)
    folder = Path(run.info.artifact_uri)
    folder.mkdir(parents=True)
    groups = {
        "A": {"count": 100, "selection_rate": 0.5, "true_positive_rate": 0.8, "false_positive_rate": 0.2},
        "B": {"count": 100, "selection_rate": 0.3, "true_positive_rate": 0.5, "false_positive_rate": 0.1},
    }
    (folder / "fairness.json").write_text(
        json.dumps(
            {
                "positive_label": 1,
                "rows": 200,
                "metrics": {"demographic_parity_difference": 0.2, "equalized_odds_difference": 0.3},
                "features": {
                    "sex": {
                        "demographic_parity_difference": 0.2,
                        "equalized_odds_difference": 0.3,
                        "groups": groups,
                    }
                },
            }
        )
    )
    (folder / "explain").mkdir()
    (folder / "explain" / "importances.json").write_text(
        json.dumps(
            {
                "method": "tree",
                "output_space": "probability",
                "rows": 200,
                "features": {"sex": 0.0, "x": 0.25},
            }
        )
    )
    mlflow.create_registered_model("carded")
    version = mlflow.create_model_version("carded", f"{folder}/model", run_id=run.info.run_id).version
    card = portal.signed_in(portal.admin_token).get(f"/projects/carded/models/{version}").text
    assert "By sex" in card
    assert "demographic parity difference 0.2" in card
    assert re.search(r"<th scope=\"row\">B</th><td class=\"num\">100</td><td class=\"num\">0.3</td>", card)
    assert "Global importances" in card
    assert card.index('<th scope="row">x</th>') < card.index('<th scope="row">sex</th>')  # largest first
