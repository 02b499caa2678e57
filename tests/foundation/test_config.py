from __future__ import annotations

from pathlib import Path

import pytest

from pave.config import load_settings, mask_url, read_credentials, write_credentials
from pave.errors import ConfigError, Forbidden
from pave.governance.egress import EgressPolicy


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("PAVE_PORT", "PAVE_DATABASE_URL", "PAVE_CONFIG", "PAVE_HOST", "PAVE_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PAVE_HOME", str(tmp_path))
    return tmp_path


def test_defaults_derive_from_home(home: Path) -> None:
    settings = load_settings()
    assert settings.home == home.resolve()
    assert settings.db_url == f"sqlite:///{home.resolve() / 'pave.db'}"
    assert settings.mlflow_db_url == f"sqlite:///{home.resolve() / 'mlflow.db'}"
    assert settings.artifacts == str(home.resolve() / "artifacts")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_precedence_is_argument_then_env_then_file_then_default(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (home / "config.toml").write_text('[pave]\nport = 9001\ngateway_port = 9081\nlog_level = "debug"\n')
    assert load_settings().port == 9001
    assert load_settings().log_level == "debug"
    monkeypatch.setenv("PAVE_PORT", "9002")
    assert load_settings().port == 9002
    assert load_settings().gateway_port == 9081
    assert load_settings(port=9003).port == 9003


def test_malformed_config_file_names_the_line(home: Path) -> None:
    (home / "config.toml").write_text("[pave]\nport = 9001\nhost = \n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "config.toml" in info.value.message
    assert "line 3" in info.value.message
    assert info.value.hint


def test_unknown_setting_and_bad_values_are_named(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "config.toml").write_text("[pave]\nprot = 1\n")
    with pytest.raises(ConfigError, match="prot") as raised:
        load_settings()
    assert raised.value.hint.startswith("did you mean prot -> port?")
    (home / "config.toml").unlink()
    monkeypatch.setenv("PAVE_PORT", "99999")
    with pytest.raises(ConfigError, match="port"):
        load_settings()
    monkeypatch.delenv("PAVE_PORT")
    monkeypatch.setenv("PAVE_DATABASE_URL", "mysql://root@localhost/x")
    with pytest.raises(ConfigError, match="database_url"):
        load_settings()


def test_a_bad_value_is_traced_to_where_it_was_set(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The error says which source gave the bad value and how to fix it there (not `pave config
    show`, which reads the same settings and fails the same way)."""
    monkeypatch.setenv("PAVE_PORT", "0")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "(from PAVE_PORT='0')" in raised.value.message
    assert raised.value.hint == "fix or unset PAVE_PORT"
    monkeypatch.delenv("PAVE_PORT")
    (home / "config.toml").write_text("[pave]\nport = -3\n")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert f"(from {home / 'config.toml'})" in raised.value.message
    assert raised.value.hint == f"fix port in {home / 'config.toml'}"
    with pytest.raises(ConfigError) as raised:
        load_settings(port=70000)
    assert "(given on the command line)" in raised.value.message
    assert raised.value.hint == "pass another value for port on the command line"


def test_egress_allow_list_takes_networks_and_names_a_bad_one(home: Path) -> None:
    (home / "config.toml").write_text('[pave]\negress_allowed_networks = ["10.20.0.0/16", "127.0.0.1"]\n')
    settings = load_settings()
    policy = EgressPolicy(allowed_networks=tuple(settings.egress_allowed_networks), resolver=_resolves_to)
    assert policy.check("http://receiver.internal:9000/hook")[2] == "10.20.3.4"
    with pytest.raises(Forbidden):
        EgressPolicy(resolver=_resolves_to).check("http://receiver.internal:9000/hook")
    (home / "config.toml").write_text('[pave]\negress_allowed_networks = ["10.20.0.0/33"]\n')
    with pytest.raises(ConfigError, match=r"10\.20\.0\.0/33"):
        load_settings()


def _resolves_to(host: str, port: int) -> list[str]:
    return ["10.20.3.4"]


def test_postgres_mlflow_store_gets_its_own_schema(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PAVE_DATABASE_URL", "postgresql+psycopg://bob:secret@db:5432/pave?options=-csearch_path%3Dteam"
    )
    settings = load_settings()
    assert "search_path%3Dteam_mlflow" in settings.mlflow_db_url
    shown = settings.shown()
    assert "secret" not in shown["database_url"]
    assert "***" in shown["database_url"]
    assert "secret" not in shown["mlflow_database_url"]


def test_mask_url_leaves_passwordless_urls_alone() -> None:
    assert mask_url("sqlite:////x/pave.db") == "sqlite:////x/pave.db"
    assert mask_url("postgresql://u:p@h/d") == "postgresql://u:***@h/d"


def test_credentials_file_is_private_and_corruption_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    write_credentials(path, "http://127.0.0.1:8000", "pave_secret")
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_credentials(path) == {"url": "http://127.0.0.1:8000", "token": "pave_secret"}
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="corrupt") as info:
        read_credentials(path)
    assert "pave token bootstrap" in (info.value.hint or "")
    path.write_text('{"url": "x"}')
    with pytest.raises(ConfigError, match="token"):
        read_credentials(path)
