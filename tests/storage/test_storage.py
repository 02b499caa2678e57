"""The object-store interface, on a local folder and on a real S3-compatible server (moto)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pave.errors import InvalidInput, MissingExtra
from pave.storage import (
    CHUNK,
    BucketMissing,
    ObjectMissing,
    Storage,
    StorageDenied,
    StorageUnreachable,
    open_storage,
)
from pave_testing import S3Server, free_port


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield open_storage(str(tmp_path / "store"))
        return
    s3: S3Server = request.getfixturevalue("s3")
    yield open_storage(f"s3://{s3.bucket()}/some/prefix")


def test_put_head_read_list_delete(store: Storage, tmp_path: Path) -> None:
    assert store.head("a/b.txt") is None
    info = store.put_bytes("a/b.txt", b"hello")
    assert info.size == 5
    head = store.head("a/b.txt")
    assert head is not None
    assert head.size == 5
    assert store.get_bytes("a/b.txt") == b"hello"
    store.put_bytes("a/c/d.txt", b"x")
    store.put_bytes("b.txt", b"y")
    assert [o.key for o in store.list("a/")] == ["a/b.txt", "a/c/d.txt"]
    assert [o.key for o in store.list("")] == ["a/b.txt", "a/c/d.txt", "b.txt"]
    store.delete("a/b.txt")
    assert store.head("a/b.txt") is None
    with pytest.raises(ObjectMissing):
        store.get_bytes("a/b.txt")
    store.delete("a/b.txt")  # deleting what is gone is fine


def test_large_file_goes_up_in_parts_and_comes_back_whole(store: Storage, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(CHUNK * 2 + 12345)  # three parts on S3
    source.write_bytes(data)
    info = store.put_file("big/big.bin", source)
    assert info.size == len(data)
    if store.url.startswith("s3://"):
        assert info.etag is not None
        assert info.etag.strip('"').endswith("-3"), "a multipart upload of three parts"
    back = store.download("big/big.bin", tmp_path / "out" / "big.bin")
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_dedupe_sends_nothing_when_the_object_is_there(store: Storage, tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    source.write_bytes(b"same bytes")
    first = store.put_file("cas/f.bin", source, dedupe=True)
    store.put_bytes("cas/f.bin.marker", b"")
    # the same key again: HEAD answers, no PUT (the modification time does not move)
    second = store.put_file("cas/f.bin", source, dedupe=True)
    assert second.modified == first.modified or second.etag == first.etag
    assert store.get_bytes("cas/f.bin") == b"same bytes"


def test_an_aborted_writer_leaves_nothing(store: Storage) -> None:
    store.put_bytes("k/obj", b"before")
    writer = store.writer("k/obj")
    with writer:
        writer.write(os.urandom(CHUNK + 10))  # a multipart upload has started on S3
    assert writer.aborted, "leaving the block without commit aborts"
    assert store.get_bytes("k/obj") == b"before", "the old object is untouched"
    assert [o.key for o in store.list("k/")] == ["k/obj"]


def test_writer_digest_checks_content_before_commit(store: Storage) -> None:
    with store.writer("w/x") as writer:
        writer.write(b"abc")
        assert writer.digest() == hashlib.sha256(b"abc").hexdigest()
        writer.commit()
    assert store.get_bytes("w/x") == b"abc"


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../../b", "a//b", "", "dir/", "a\\b", "a\x00b"])
def test_keys_cannot_leave_the_root(store: Storage, key: str) -> None:
    with pytest.raises(InvalidInput):
        store.put_bytes(key, b"x")


def test_missing_bucket_is_one_line_naming_the_fix(s3: S3Server) -> None:
    store = open_storage("s3://no-such-bucket-here/p")
    with pytest.raises(BucketMissing) as caught:
        store.check()
    assert "no-such-bucket-here" in caught.value.message
    assert "PAVE_ARTIFACT_ROOT" in (caught.value.hint or "")


def test_unreachable_store_names_the_endpoint(monkeypatch: pytest.MonkeyPatch, s3: S3Server) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    store = open_storage("s3://any/p")
    with pytest.raises(StorageUnreachable) as caught:
        store.check()
    assert "AWS_ENDPOINT_URL" in (caught.value.hint or "")


def test_wrong_credentials_are_refused_with_the_setting(
    monkeypatch: pytest.MonkeyPatch, s3: S3Server
) -> None:
    bucket = s3.bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "wrong")
    store = open_storage(f"s3://{bucket}/p")
    with s3.checking_credentials(), pytest.raises(StorageDenied) as caught:
        store.check()
    assert "AWS_ACCESS_KEY_ID" in (caught.value.hint or "")


def test_credentials_in_the_url_are_refused() -> None:
    from pave.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        open_storage("s3://key:secret@bucket/p")
    assert "secret" not in caught.value.message


def test_a_missing_backend_extra_names_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from pave import storage

    monkeypatch.setitem(storage.BACKENDS, "gs", ("pave.storage.not_there:GcsStorage", "gcs"))
    with pytest.raises(MissingExtra) as caught:
        open_storage("gs://bucket/p")
    assert caught.value.hint == "pip install 'pave[gcs]'"
