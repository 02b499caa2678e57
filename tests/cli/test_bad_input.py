"""Bad input to the CLI: one line of error, one line of hint, a non-zero exit, nothing touched."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from pave_testing import PaveServer, pave_env, run_pave


def _fingerprint(home: Path) -> dict[str, str]:
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        # what is stored: the databases, credentials and config (not the pid files of what runs)
        if p.is_file() and p.suffix in (".db", ".json", ".toml") and p.parent.name != "run"
    }


def _assert_clean_error(result: object, *needles: str) -> None:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.returncode != 0  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    assert stderr.startswith("error: ")
    assert "hint: " in stderr
    for needle in needles:
        assert needle in stderr, stderr


def test_malformed_config_file(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[pave]\nport = = 3\n")
    result = run_pave("up", env=pave_env(tmp_path))
    _assert_clean_error(result, "config.toml", "line 2")
    assert not (tmp_path / "pave.db").exists()


def test_unreachable_database(tmp_path: Path) -> None:
    env = pave_env(tmp_path, PAVE_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    _assert_clean_error(run_pave("up", env=env), "cannot reach the database", "PAVE_DATABASE_URL")


def test_wrong_database_url(tmp_path: Path) -> None:
    env = pave_env(tmp_path, PAVE_DATABASE_URL="mongodb://localhost/x")
    _assert_clean_error(run_pave("up", env=env), "database_url")


def test_port_in_use_touches_nothing(shared_server: PaveServer) -> None:
    before = _fingerprint(shared_server.home)
    env = shared_server.env | {"PAVE_HOME": str(shared_server.home)}
    # the same home: refused because it already runs
    _assert_clean_error(run_pave("up", "--port", str(shared_server.port), env=env), "already running")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        other = shared_server.home.parent / "other-home"
        result = run_pave("up", "--port", str(busy), env=pave_env(other))
    _assert_clean_error(result, f"127.0.0.1:{busy}", "--port")
    assert _fingerprint(shared_server.home).keys() == before.keys()


def test_corrupt_credentials_file(tmp_path: Path) -> None:
    (tmp_path / "credentials.json").write_text("{ this is not json")
    result = run_pave("token", "list", env=pave_env(tmp_path))
    _assert_clean_error(result, "credentials.json", "corrupt", "pave token bootstrap")
    assert (tmp_path / "credentials.json").read_text() == "{ this is not json"


def test_no_platform_running(tmp_path: Path) -> None:
    env = pave_env(tmp_path, PAVE_URL="http://127.0.0.1:9", PAVE_TOKEN="pave_x")
    result = run_pave("projects", env=env)
    _assert_clean_error(result, "no Pave control plane answers", "pave up")
    assert result.returncode == 5  # unreachable, not a usage error (2)


@pytest.mark.parametrize("args", [["token", "revoke", "not-a-number"], ["up", "--port", "abc"]])
def test_usage_errors_are_not_tracebacks(tmp_path: Path, args: list[str]) -> None:
    result = run_pave(*args, env=pave_env(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
