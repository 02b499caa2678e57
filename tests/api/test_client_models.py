"""``pave.Client`` answers the routes' response models, and dumping one gives back exactly the JSON
the server sent (what ``--json`` prints), so the move from dicts changed no output."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pave.cli.console import print_json
from pave.client import Client
from pave.schemas.access import PolicyOut, TokenOut, Whoami
from pave.schemas.common import Wire
from pave.schemas.projects import ProjectOut
from pave_testing import PaveServer

PROJECT = "typed-sdk"


# fields that change between two requests
VOLATILE = {"costs": ("since", "until"), "list_processes": ("seconds_since_seen", "seen_at", "healthy")}


def _without(doc: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(doc, list):
        return [_without(item, keys) for item in doc]
    return {k: v for k, v in doc.items() if k not in keys}


@pytest.fixture(scope="module")
def client(shared_server: PaveServer) -> Any:
    with Client(url=shared_server.url, token=shared_server.token) as sdk:
        if PROJECT not in [p.name for p in sdk.list_projects()]:
            sdk.create_project(PROJECT, owner="admin", description="typed answers")
        sdk.create_token("typed-bot", "typed", role="viewer", project=PROJECT)
        yield sdk


CALLS: list[tuple[str, Callable[[Client], Any], str, str]] = [
    ("whoami", Client.whoami, "GET", "/api/v1/whoami"),
    ("list_tokens", Client.list_tokens, "GET", "/api/v1/tokens"),
    ("list_projects", Client.list_projects, "GET", "/api/v1/projects"),
    ("get_project", lambda c: c.get_project(PROJECT), "GET", f"/api/v1/projects/{PROJECT}"),
    ("get_policy", lambda c: c.get_policy(PROJECT), "GET", f"/api/v1/projects/{PROJECT}/policy"),
    ("list_members", lambda c: c.list_members(PROJECT), "GET", f"/api/v1/projects/{PROJECT}/members"),
    ("list_runs", lambda c: c.list_runs(PROJECT), "GET", f"/api/v1/projects/{PROJECT}/runs"),
    ("get_loop", lambda c: c.get_loop(PROJECT), "GET", f"/api/v1/projects/{PROJECT}/loop"),
    ("list_deployments", Client.list_deployments, "GET", "/api/v1/deployments"),
    ("list_processes", Client.list_processes, "GET", "/api/v1/platform/processes"),
    ("verify_audit", Client.verify_audit, "GET", "/api/v1/audit/verify"),
    ("costs", lambda c: c.costs(PROJECT), "GET", f"/api/v1/projects/{PROJECT}/costs"),
    ("list_alerts", Client.list_alerts, "GET", "/api/v1/alerts?status=open"),
    ("list_incidents", Client.list_incidents, "GET", "/api/v1/incidents?status=open"),
]


@pytest.mark.parametrize(("name", "call", "method", "path"), CALLS, ids=[c[0] for c in CALLS])
def test_json_output_is_the_json_the_server_sent(
    client: Client,
    name: str,
    call: Callable[[Client], Any],
    method: str,
    path: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    answer = call(client)
    assert isinstance(answer, Wire) or all(isinstance(item, Wire) for item in answer), name
    raw = client.request(method, path)
    capsys.readouterr()
    print_json(answer)  # what `--json` prints
    printed = json.loads(capsys.readouterr().out)
    volatile = VOLATILE.get(name, ())
    assert _without(printed, volatile) == _without(raw, volatile)


def test_answers_read_as_attributes(client: Client) -> None:
    me = client.whoami()
    assert isinstance(me, Whoami)
    assert me.is_admin
    tokens = client.list_tokens()
    assert all(isinstance(t, TokenOut) for t in tokens)
    assert "typed-bot" in {t.identity for t in tokens}
    project = client.get_project(PROJECT)
    assert isinstance(project, ProjectOut)
    assert project.description == "typed answers"
    policy = client.get_policy(PROJECT)
    assert isinstance(policy, PolicyOut)
    assert policy.project == PROJECT
