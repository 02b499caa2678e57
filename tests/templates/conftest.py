"""Fixtures for the template tests: a private PAVE_HOME and one generated project per template."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pave.templates import generate, list_templates

TEMPLATE_NAMES = [t.name for t in list_templates()]


@pytest.fixture(scope="session")
def pave_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """PAVE_HOME for the whole session: template repositories are built once under it."""
    home = tmp_path_factory.mktemp("pave-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAVE_HOME", str(home))
        patch.delenv("PAVE_CONFIG", raising=False)
        yield home


@pytest.fixture(scope="session", params=TEMPLATE_NAMES)
def project(
    request: pytest.FixtureRequest, pave_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A project freshly generated from each template (latest version); tests must not change it."""
    name = request.param
    dest = tmp_path_factory.mktemp("projects") / name
    return generate(name, dest, {"project_name": f"my-{name}", "owner": "group:ml-team"})


@pytest.fixture
def home(pave_home: Path) -> Path:
    """The session's PAVE_HOME, for tests that generate their own projects."""
    assert os.environ["PAVE_HOME"] == str(pave_home)
    return pave_home
