from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pave.data.errors import DataFileMissing
from pave.data.objects import StorageObjects
from pave.data.versioning import read_frame, sha256_file, stored_file, version_file
from pave.storage import open_storage
from pave_testing import S3Server


def write_csv(path: Path, rows: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"x": range(rows), "y": ["a"] * rows}).to_csv(path, index=False)
    return path


def objects(root: Path | str) -> StorageObjects:
    return StorageObjects(open_storage(str(root)))


def test_a_version_is_stored_content_addressed_with_a_manifest(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "p" / "train.csv")
    store = objects(tmp_path / "artifacts")
    version = version_file("train", source, objects=store, file_format="csv")
    sha = sha256_file(source)
    assert version.sha256 == sha
    assert (version.rows, version.columns, version.bytes) == (3, ["x", "y"], source.stat().st_size)
    stored = tmp_path / "artifacts" / "datasets" / sha[:2] / sha / "train.csv"
    assert version.stored_path == f"datasets/{sha[:2]}/{sha}/train.csv"
    assert stored.read_bytes() == source.read_bytes()
    manifest = json.loads((stored.parent / "manifest.json").read_text())
    assert manifest["sha256"] == sha
    assert manifest["rows"] == 3
    back = stored_file(sha, objects=store, folder=tmp_path / "back")
    assert back.read_bytes() == source.read_bytes()
    assert back.name == "train.csv"


def test_the_same_bytes_are_stored_once(tmp_path: Path) -> None:
    store = objects(tmp_path / "artifacts")
    a = version_file("a", write_csv(tmp_path / "one" / "a.csv"), objects=store, file_format="csv")
    b = version_file("b", write_csv(tmp_path / "two" / "a.csv"), objects=store, file_format="csv")
    c = version_file("c", write_csv(tmp_path / "three" / "a.csv", rows=4), objects=store, file_format="csv")
    assert a.sha256 == b.sha256 != c.sha256
    assert len(list((tmp_path / "artifacts" / "datasets").glob("*/*/*.csv"))) == 2


def test_parquet_is_read_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pd.DataFrame({"x": [1.5, 2.5]}).to_parquet(path)
    store = objects(tmp_path / "a")
    version = version_file("d", path, objects=store, file_format="parquet")
    assert version.rows == 2
    back = stored_file(version.sha256, objects=store, folder=tmp_path / "back")
    assert read_frame(back, "parquet")["x"].tolist() == [1.5, 2.5]


def test_an_unknown_version_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(DataFileMissing, match="not in the store"):
        stored_file("ab" * 32, objects=objects(tmp_path), folder=tmp_path / "x")


def test_versions_live_in_an_s3_bucket_and_are_sent_once(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    store = objects(f"s3://{bucket}/pave")
    source = write_csv(tmp_path / "train.csv", rows=50)
    version = version_file("train", source, objects=store, file_format="csv")
    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {
        f"pave/{version.stored_path}",
        f"pave/datasets/{version.sha256[:2]}/{version.sha256}/manifest.json",
    }
    modified = s3.client().head_object(Bucket=bucket, Key=f"pave/{version.stored_path}")["LastModified"]
    version_file("again", source, objects=store, file_format="csv")  # HEAD finds it: no PUT
    assert (
        s3.client().head_object(Bucket=bucket, Key=f"pave/{version.stored_path}")["LastModified"] == modified
    )
    back = stored_file(version.sha256, objects=store, folder=tmp_path / "back")
    assert back.read_bytes() == source.read_bytes()
