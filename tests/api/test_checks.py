"""Each check of the request gate alone, on a hand-made Context (no server, no MLflow).

The checks that read the database run on a real SQLite store with Pave's migrations; the scope
check's MLflow look-ups are covered end to end by tests/governance and tests/security.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pave.api import checks
from pave.api.checks import CHECKS, Context, Gate
from pave.errors import Forbidden, InvalidInput, PayloadTooLarge, Unauthenticated
from pave.governance.access import set_member
from pave.governance.scope import RequestScope
from pave.governance.tokens import create_token
from pave.store import migrate
from pave.store.db import make_engine, session_factory, transaction
from pave.store.tables import Project, utcnow


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pave.db'}")
    migrate.upgrade(engine, tmp_path)
    yield session_factory(engine)
    engine.dispose()


def _ctx(
    sessions: sessionmaker[Session] | None = None,
    method: str = "GET",
    path: str = "/api/v1/whoami",
    headers: dict[str, str] | None = None,
    query: bytes = b"",
    **learnt: Any,
) -> Context:
    gate = Gate(
        sessions=sessions or sessionmaker(),
        allowed_hosts=["127.0.0.1", "localhost"],
        max_body=1024,
        artifact_store="/nonexistent/artifacts",
    )
    ctx = Context(gate, method, path, {"host": "127.0.0.1:8000", **(headers or {})}, query)
    for key, value in learnt.items():
        setattr(ctx, key, value)
    return ctx


def _in_session(sessions: sessionmaker[Session], check: checks.Check, ctx: Context) -> Any:
    with sessions() as session:
        ctx.session = session
        try:
            return check(ctx)
        finally:
            ctx.session = None


def test_the_table_runs_in_the_documented_order() -> None:
    assert [step.name for step in CHECKS] == [
        "host",
        "size",
        "path",
        "route",
        "origin",
        "authentication",
        "rate limit",
        "media type",
        "body",
        "scope",
        "authorisation",
        "content",
        "policy",
    ]
    assert {step.name for step in CHECKS if step.blocking} == {
        "authentication",
        "scope",
        "authorisation",
        "content",
        "policy",
    }


def test_host() -> None:
    assert checks.check_host(_ctx()) is None
    error = checks.check_host(_ctx(headers={"host": "evil.example"}))
    assert isinstance(error, InvalidInput)
    assert "PAVE_ALLOWED_HOSTS" in (error.hint or "")


@pytest.mark.parametrize(("length", "refused"), [(None, False), ("10", False), ("1025", True), ("-1", True)])
def test_size(length: str | None, refused: bool) -> None:
    headers = {"content-length": length} if length is not None else {}
    error = checks.check_size(_ctx(headers=headers))
    assert isinstance(error, PayloadTooLarge) if refused else error is None


@pytest.mark.parametrize(
    ("path", "query", "refused"),
    [
        ("/api/v1/projects", b"", False),
        ("/mlflow/api/2.0/mlflow-artifacts/artifacts/1/%2e%2e/x", b"", True),
        ("/mlflow/get-artifact", b"path=..%2F..%2Fetc%2Fpasswd", True),
        ("/api/v1/projects/a%00b", b"", True),
        ("/api/v1/projects/a%5cb", b"", True),
        ("/mlflow/get-artifact", b"path=model/MLmodel", False),
    ],
)
def test_path(path: str, query: bytes, refused: bool) -> None:
    error = checks.check_path(_ctx(path=path, query=query))
    assert isinstance(error, InvalidInput) if refused else error is None


def test_route_denies_what_no_rule_covers_and_marks_public_routes() -> None:
    assert isinstance(checks.check_route(_ctx(path="/nowhere")), Forbidden)
    public = _ctx(path="/healthz")
    assert checks.check_route(public) is None
    assert public.public
    tokens = _ctx(method="POST", path="/api/v1/tokens")
    assert checks.check_route(tokens) is None
    assert (tokens.action, tokens.public) == ("admin", False)


def test_origin_only_matters_on_state_changes() -> None:
    evil = {"origin": "http://localhost:8000@evil.example"}
    assert checks.check_origin(_ctx(headers=evil)) is None  # a GET changes nothing
    assert isinstance(checks.check_origin(_ctx(method="POST", headers=evil)), Forbidden)
    assert checks.check_origin(_ctx(method="POST", headers={"origin": "http://localhost:8000"})) is None
    assert checks.check_origin(_ctx(method="POST")) is None  # no Origin: not a browser


def test_authentication(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        _, secret = create_token(session, identity="ann", name="t", role="viewer")
    ok = _ctx(sessions, headers={"authorization": f"Bearer {secret}"})
    assert _in_session(sessions, checks.check_authentication, ok) is None
    assert ok.principal is not None
    assert ok.principal.identity == "ann"
    for headers in ({}, {"authorization": "Bearer pave_wrong"}, {"authorization": f"Basic {secret}"}):
        assert isinstance(
            _in_session(sessions, checks.check_authentication, _ctx(sessions, headers=headers)),
            Unauthenticated,
        )


def test_authentication_outside_its_thread_hop_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="worker-thread hop"):
        checks.check_authentication(_ctx())


@pytest.mark.parametrize(
    ("method", "path", "content_type", "refused"),
    [
        ("POST", "/api/v1/projects", "application/json", False),
        ("POST", "/api/v1/projects", "text/plain", True),
        ("POST", "/mlflow/api/2.0/mlflow/runs/create", "application/x-www-form-urlencoded", True),
        ("POST", "/mlflow/api/2.0/mlflow/runs/create", "application/json; charset=utf-8", False),
        ("PUT", "/mlflow/api/2.0/mlflow-artifacts/artifacts/1/a/b.bin", "application/octet-stream", False),
        ("GET", "/api/v1/projects", "text/plain", False),
    ],
)
def test_media_type(method: str, path: str, content_type: str, refused: bool) -> None:
    ctx = _ctx(method=method, path=path, headers={"content-type": content_type, "content-length": "2"})
    error = checks.check_media_type(ctx)
    assert isinstance(error, checks.UnsupportedMediaType) if refused else error is None


@pytest.mark.parametrize(
    ("path", "body", "refused"),
    [
        ("/mlflow/api/2.0/mlflow/runs/create", b'{"experiment_id": "1"}', None),
        ("/mlflow/api/2.0/mlflow/runs/create", b'["a list"]', "JSON object"),
        ("/mlflow/graphql", b'{"variables": {}}', "with a 'query'"),
        ("/mlflow/api/2.0/mlflow/runs/create", b"[" * 100 + b"]" * 100, "nests deeper"),
        ("/api/v1/projects", b'{"name": "\\ud800"}', "not valid Unicode"),
        ("/api/v1/projects", b'["pave validates its own bodies"]', None),
        ("/mlflow/graphql", b'{"query": "' + b"{a" * 100 + b'}"}', "GraphQL query nests"),
    ],
)
def test_body(path: str, body: bytes, refused: str | None) -> None:
    ctx = _ctx(method="POST", path=path, body=body)
    error = checks.check_body(ctx)
    if refused is None:
        assert error is None
        assert ctx.document is not None
    else:
        assert isinstance(error, InvalidInput)
        assert refused in error.message


def _world(sessions: sessionmaker[Session]) -> dict[str, Any]:
    with transaction(sessions) as session:
        for name in ("alpha", "beta"):
            session.add(
                Project(
                    name=name, owner="root", description="", created_by="root", created_at=utcnow(), labels={}
                )
            )
        session.flush()
        set_member(session, "alpha", "dev", "developer", granted_by="root")
        _, dev = create_token(session, identity="dev", name="t", role="developer")
    ctx = _ctx(sessions, headers={"authorization": f"Bearer {dev}"})
    _in_session(sessions, checks.check_authentication, ctx)
    return {"principal": ctx.principal}


@pytest.mark.parametrize(
    ("projects", "unresolved", "action", "allowed"),
    [
        (["alpha"], False, "write", True),
        (["alpha"], False, "deploy", False),
        (["beta"], False, "read", False),
        (["alpha", "beta"], False, "read", False),
        ([], True, "read", False),  # cannot be attributed to a project: denied
        ([], False, "read", True),  # concerns no project: the token's role
    ],
)
def test_authorisation(
    sessions: sessionmaker[Session], projects: list[str], unresolved: bool, action: str, allowed: bool
) -> None:
    world = _world(sessions)
    ctx = _ctx(
        sessions,
        method="POST",
        path="/mlflow/api/2.0/mlflow/runs/log-metric",
        principal=world["principal"],
        action=action,
        scope=RequestScope(projects=projects, unresolved=unresolved),
    )
    checks.check_route(ctx)
    ctx.action = action
    error = _in_session(sessions, checks.check_authorisation, ctx)
    assert error is None if allowed else isinstance(error, Forbidden)


def test_content_caps_and_fields() -> None:
    big = _ctx(method="GET", path="/mlflow/api/2.0/mlflow/runs/get", query=b"max_results=50001")
    assert isinstance(checks.check_content(big), InvalidInput)
    located = _ctx(
        method="POST",
        path="/mlflow/api/2.0/mlflow/experiments/create",
        document={"name": "x", "artifact_location": "file:///etc"},
        lookup=object(),
        session=object(),
    )
    error = checks.check_content(located)
    assert isinstance(error, InvalidInput)
    assert "artifact_location" in error.message


def test_policy_is_skipped_without_a_project_or_a_change() -> None:
    assert checks.check_policy(_ctx(method="GET")) is None
    assert checks.check_policy(_ctx(method="POST")) is None  # no project in scope
