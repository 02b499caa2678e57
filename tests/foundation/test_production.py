"""environment = production refuses insecure settings at start-up, one line and its fix each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pave.config import Settings, is_loopback
from pave.errors import ConfigError
from pave_testing import free_port, pave_env, run_pave

SAFE: dict[str, Any] = {
    "environment": "production",
    "allowed_hosts": ["pave.example.com"],
    "database_url": "postgresql+psycopg://pave@db.example.com:5432/pave",
    "public_url": "https://pave.example.com",
}


def _settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(home=tmp_path, **{**SAFE, **changes})


def test_a_safe_production_configuration_starts(tmp_path: Path) -> None:
    assert _settings(tmp_path).production_problems() == []
    assert _settings(tmp_path, host="0.0.0.0").production_problems() == []


@pytest.mark.parametrize(
    ("changes", "words", "fix"),
    [
        ({"allowed_hosts": ["*"]}, "allowed_hosts ['*']", "PAVE_ALLOWED_HOSTS"),
        ({"gateway_auth": "none", "gateway_host": "0.0.0.0"}, "gateway_auth none", "PAVE_GATEWAY_AUTH=token"),
        (
            {"database_url": None, "host": "10.1.2.3"},
            "SQLite behind a non-loopback bind",
            "PAVE_DATABASE_URL",
        ),
        ({"public_url": "http://pave.example.com"}, "plain-HTTP public URL", "PAVE_PUBLIC_URL=https"),
        ({"public_url": None}, "plain-HTTP public URL", "TLS proxy"),
    ],
)
def test_each_insecure_setting_is_refused_with_its_fix(
    tmp_path: Path, changes: dict[str, Any], words: str, fix: str
) -> None:
    settings = _settings(tmp_path, **changes)
    with pytest.raises(ConfigError) as caught:
        settings.check_production()
    assert words in caught.value.message
    assert "\n" not in caught.value.message
    assert fix in (caught.value.hint or "")


def test_development_allows_all_of_it(tmp_path: Path) -> None:
    loose = Settings(home=tmp_path, allowed_hosts=["*"], gateway_auth="none", gateway_host="0.0.0.0")
    assert loose.production_problems() == []


def test_the_gateway_alone_is_held_to_its_own_rule(tmp_path: Path) -> None:
    settings = _settings(tmp_path, public_url=None, gateway_auth="none", gateway_host="0.0.0.0")
    assert [p.message.split(":")[0] for p in settings.production_problems("gateway")] == [
        "production refuses gateway_auth none on 0.0.0.0"
    ]
    assert _settings(tmp_path, gateway_auth="none").production_problems("gateway") == []  # on loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("pave.example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_pave_up_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    env = pave_env(tmp_path, PAVE_ENVIRONMENT="production", PAVE_ALLOWED_HOSTS='["*"]')
    done = run_pave("up", "--port", str(free_port()), "--no-gateway", env=env, timeout=60)
    assert done.returncode != 0
    assert "production refuses allowed_hosts ['*']" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "pave.db").exists(), "nothing was opened"
