from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pave.data.errors import DataFileMissing
from pave.data.versioning import list_versions, read_frame, sha256_file, stored_file, version_file
from pave.errors import ConfigError


def write_csv(path: Path, rows: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"x": range(rows), "y": ["a"] * rows}).to_csv(path, index=False)
    return path


def test_a_version_is_stored_content_addressed_with_a_manifest(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "p" / "train.csv")
    root = str(tmp_path / "artifacts")
    version = version_file("train", source, artifact_root=root, file_format="csv")
    sha = sha256_file(source)
    assert version.sha256 == sha
    assert (version.rows, version.columns, version.bytes) == (3, ["x", "y"], source.stat().st_size)
    stored = tmp_path / "artifacts" / "datasets" / sha[:2] / sha / "train.csv"
    assert Path(version.stored_path) == stored
    assert stored.read_bytes() == source.read_bytes()
    manifest = json.loads((stored.parent / "manifest.json").read_text())
    assert manifest["sha256"] == sha
    assert manifest["rows"] == 3
    assert stored_file(sha, artifact_root=root) == stored


def test_the_same_bytes_are_stored_once(tmp_path: Path) -> None:
    root = str(tmp_path / "artifacts")
    a = version_file("a", write_csv(tmp_path / "one" / "a.csv"), artifact_root=root, file_format="csv")
    b = version_file("b", write_csv(tmp_path / "two" / "a.csv"), artifact_root=root, file_format="csv")
    c = version_file(
        "c", write_csv(tmp_path / "three" / "a.csv", rows=4), artifact_root=root, file_format="csv"
    )
    assert a.sha256 == b.sha256 != c.sha256
    assert len(list((tmp_path / "artifacts" / "datasets").glob("*/*/*.csv"))) == 2
    assert {v["sha256"] for v in list_versions(artifact_root=root)} == {a.sha256, c.sha256}


def test_parquet_is_read_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"x": [1.5, 2.5]}).to_parquet(path)
    version = version_file("d", path, artifact_root=str(tmp_path / "a"), file_format="parquet")
    assert version.rows == 2
    assert read_frame(Path(version.stored_path), "parquet")["x"].tolist() == [1.5, 2.5]


def test_an_unknown_version_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataFileMissing, match="not in the store"):
        stored_file("ab" * 32, artifact_root=str(tmp_path))


def test_a_remote_artifact_root_is_refused_for_now(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="local artifact root"):
        version_file("x", write_csv(tmp_path / "x.csv"), artifact_root="s3://bucket/pave", file_format="csv")
