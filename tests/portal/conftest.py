"""Fixtures of the portal tests: a fresh platform per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from portal_kit import Portal, start_portal


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """A fresh `pave up`: nothing on it but its bootstrap admin."""
    found = start_portal(tmp_path_factory.mktemp("portal"))
    yield found
    found.close()
