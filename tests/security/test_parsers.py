"""The gate's parsers alone: JSON depth and Unicode, the Origin header, private SQLite files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pave.api.checks import MAX_JSON_DEPTH, json_depth, origin_allowed, parse_json
from pave.errors import InvalidInput
from pave.store.db import make_engine, private_file

HOSTS = ["127.0.0.1", "localhost", "[::1]"]


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"{}", 1),
        (b'{"a": [1, {"b": 2}]}', 3),
        (b'"[[[[["', 0),  # brackets inside a string do not nest
        (b'{"a": "\\"[[[", "b": [[]]}', 3),  # nor behind an escaped quote
        (b"[" * 50_000 + b"]" * 50_000, 50_000),
        (b"1", 0),
    ],
)
def test_json_depth_counts_without_recursion(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


def test_deep_json_is_refused_before_any_parser_recurses() -> None:
    for deep in (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"[" * (MAX_JSON_DEPTH + 1)):
        with pytest.raises(InvalidInput, match="nests deeper"):
            parse_json(deep)
    assert parse_json(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH) is not None


@pytest.mark.parametrize("text", ['"\\ud800"', '{"name": "x\\udfff"}', '{"\\ud800": 1}', '["a", "\\udc00b"]'])
def test_lone_surrogates_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="not valid Unicode"):
        parse_json(text.encode())


def test_surrogate_pairs_and_nan_stay_valid() -> None:
    assert parse_json(json.dumps({"name": "smile 😀", "v": float("nan")}).encode())["name"] == "smile 😀"
    assert parse_json(b"not json") is None


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:8000", True),
        ("https://127.0.0.1", True),
        ("http://[::1]:8000", True),
        ("http://localhost:8000@evil.example", False),
        ("http://user:pw@localhost:8000", False),
        ("http://evil.example#@localhost", False),
        ("http://localhost.evil.example", False),
        ("http://localhost:8000/path", False),
        ("null", False),
        ("file://localhost", False),
        ("javascript://localhost", False),
        ("http://localhost:99999", False),
        ("http://localhost:8000?x=1", False),
        ("localhost:8000", False),
    ],
)
def test_origin_is_parsed_not_cut(origin: str, allowed: bool) -> None:
    assert origin_allowed(origin, HOSTS) is allowed


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_files_are_created_private(tmp_path: Path) -> None:
    os.umask(0o022)
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert _mode(tmp_path / "new.db-wal") == 0o600
    engine.dispose()
    assert _mode(tmp_path / "new.db") == 0o600


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    old.write_bytes(b"")
    old.chmod(0o644)
    (tmp_path / "old.db-wal").write_bytes(b"")
    (tmp_path / "old.db-wal").chmod(0o666)
    private_file(old)
    assert _mode(old) == 0o600
    assert _mode(tmp_path / "old.db-wal") == 0o600
