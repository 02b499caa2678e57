"""Helpers of the portal tests: a real control plane (`pave up`), browser-like clients.

A real server in a subprocess rather than the app in-process: MLflow's server is configured once
per process, and the test packages that do run it in-process must keep that process to
themselves. The tests still write fixtures straight into the server's stores (its SQLite files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.governance.tokens import create_token
from pave.store.db import make_engine, session_factory, transaction
from pave_testing import PaveServer

CSRF = re.compile(r'name="csrf" value="([^"]*)"')


@dataclass
class Portal:
    server: PaveServer
    settings: Settings = field(init=False)
    engine: Engine = field(init=False)
    sessions: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.settings = Settings(home=self.server.home)
        self.engine = make_engine(self.settings.db_url)
        self.sessions = session_factory(self.engine)

    @property
    def admin_token(self) -> str:
        return self.server.token

    def token(self, identity: str, role: str, project: str | None = None) -> str:
        with transaction(self.sessions) as session:
            _, secret = create_token(
                session, identity=identity, name=f"portal-{identity}", role=role, project=project
            )
        return secret

    def browser(self) -> httpx.Client:
        """A client with no token: it only has the cookies the portal gives it."""
        return httpx.Client(base_url=self.server.url, timeout=60)

    def signed_in(self, secret: str) -> httpx.Client:
        client = self.browser()
        page = client.get("/signin")
        assert page.status_code == 200, page.text
        answer = client.post("/signin", data={"csrf": csrf_of(page.text), "token": secret})
        assert answer.status_code == 303, answer.text
        return client

    def close(self) -> None:
        self.engine.dispose()
        self.server.stop()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found[1]


def start_portal(home: Path) -> Portal:
    server = PaveServer.up(home)
    return Portal(server)
