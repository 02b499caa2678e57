"""An S3-compatible bucket as the object store (``PAVE_ARTIFACT_ROOT=s3://BUCKET/PREFIX``).

boto3 with the standard AWS settings: ``AWS_ENDPOINT_URL`` (MinIO, Ceph, moto: any S3-compatible
server), ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION`` (or a profile,
instance role... whatever boto3 finds). Large objects go up as multipart uploads, several parts at
once; an upload that fails or is aborted is aborted on the server too (no orphan parts kept).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pave.errors import ConfigError
from pave.storage.base import (
    CHUNK,
    BucketMissing,
    ObjectInfo,
    ObjectMissing,
    ObjectWriter,
    Storage,
    StorageDenied,
    StorageError,
    StorageUnreachable,
    check_key,
)

PARALLEL_PARTS = 8  # parts in flight per upload: bounded memory (8 x 8 MB), full bandwidth
_DENIED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "403",
    "AllAccessDisabled",
}


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")``."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket or "@" in bucket or ":" in bucket:
        raise ConfigError(
            f"PAVE_ARTIFACT_ROOT={url.split('@')[-1]!r} is not s3://BUCKET/PREFIX",
            hint="credentials never go in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def _endpoint() -> str:
    """Where boto3 sends requests, named by its setting (``AWS_ENDPOINT_URL=...`` or AWS itself)."""
    url = os.environ.get("AWS_ENDPOINT_URL")
    return f"AWS_ENDPOINT_URL={url}" if url else "AWS S3 (no AWS_ENDPOINT_URL set)"


def _key_id() -> str:
    key = os.environ.get("AWS_ACCESS_KEY_ID")
    return f"AWS_ACCESS_KEY_ID={key}" if key else "the credentials boto3 found (profile or role)"


class S3Storage(Storage):
    """Objects in ``bucket`` under ``prefix``."""

    def __init__(self, url: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = split_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        config = Config(
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=2 * PARALLEL_PARTS + 2,
        )
        self.client = boto3.session.Session().client("s3", config=config)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    # --- errors ----------------------------------------------------------------------------------

    def error(self, exc: Exception, what: str, *, bucket_call: bool = False) -> StorageError:
        """One line naming the setting to fix, for any boto3 failure.

        ``bucket_call``: the request named only the bucket (HEAD bucket), so a bare 404 means
        the bucket is missing (HEAD answers carry no error code).
        """
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        where = f"{self.url} at {_endpoint()}"
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StorageDenied(
                f"{what}: no credentials for the object store {where}",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile or role)",
            )
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket" or (code == "404" and bucket_call):
                return BucketMissing(
                    f"{what}: the bucket {self.bucket} does not exist at {_endpoint()}",
                    hint=f"create it (aws s3 mb s3://{self.bucket}) or set PAVE_ARTIFACT_ROOT to an existing "
                    "bucket",
                )
            if code in _DENIED:
                return StorageDenied(
                    f"{what}: the object store at {_endpoint()} refused {_key_id()} ({code})",
                    hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to a key that may read and write "
                    f"s3://{self.bucket}",
                )
            return StorageError(
                f"{what}: the object store {where} answered {code or 'an error'}",
                hint="check the store's health; the operation can be retried",
            )
        if isinstance(exc, EndpointConnectionError) or "Connect" in type(exc).__name__:
            return StorageUnreachable(
                f"{what}: no object store answers at {_endpoint()}",
                hint="set AWS_ENDPOINT_URL to the store's URL (unset for AWS itself) and check that the "
                "store is up",
            )
        return StorageError(
            f"{what}: the object store {where} failed ({type(exc).__name__}: {str(exc)[:200]})",
            hint="check AWS_ENDPOINT_URL and the store's health; the operation can be retried",
        )

    def _call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            raise self.error(exc, what) from None

    # --- the interface ---------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self.error(exc, f"reading {key}") from None
        except Exception as exc:
            raise self.error(exc, f"reading {key}") from None
        modified = answer.get("LastModified")
        return ObjectInfo(
            key, int(answer["ContentLength"]), answer.get("ETag"), modified.timestamp() if modified else None
        )

    def writer(self, key: str) -> ObjectWriter:
        return _MultipartWriter(self, key)

    def read(self, key: str) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
                raise ObjectMissing(f"no object {key} in {self.url}") from None
            raise self.error(exc, f"reading {key}") from None
        except Exception as exc:
            raise self.error(exc, f"reading {key}") from None
        return self._stream(answer["Body"], key)

    def _stream(self, body: Any, key: str) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK)
        except Exception as exc:
            raise self.error(exc, f"reading {key}") from None
        finally:
            body.close()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        item["Key"][len(self.prefix) :],
                        int(item["Size"]),
                        item.get("ETag"),
                        item["LastModified"].timestamp() if item.get("LastModified") else None,
                    )
        except StorageError:
            raise
        except Exception as exc:
            raise self.error(exc, f"listing {prefix or '/'}") from None

    def delete(self, key: str) -> None:
        self._call(f"deleting {key}", "delete_object", Key=self._key(key))

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise self.error(exc, f"PAVE_ARTIFACT_ROOT={self.url}", bucket_call=True) from None


class _MultipartWriter(ObjectWriter):
    """Small objects: one PUT on commit. Large ones: a multipart upload, parts sent as they fill,
    up to PARALLEL_PARTS at once; commit completes it, abort (or any failure) aborts it."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        super().__init__(key)
        self.storage = storage
        self.s3_key = storage._key(key)
        # what was written and not yet sent, as the caller's own bytes (no copy until a part is cut)
        self.pieces: deque[memoryview] = deque()
        self.pending = 0
        self.upload_id: str | None = None
        self.parts: list[Future[dict[str, Any]]] = []
        self.pool: ThreadPoolExecutor | None = None
        self.slots = threading.Semaphore(PARALLEL_PARTS)

    def _write(self, data: bytes) -> None:
        # bytes are immutable: kept as they are; anything else is copied once, now
        self.pieces.append(memoryview(data if isinstance(data, bytes) else bytes(data)))
        self.pending += len(data)
        while self.pending >= CHUNK:
            self._send(self._take(CHUNK))

    def _take(self, size: int) -> bytes:
        """The next ``size`` pending bytes as one part (one copy: the join)."""
        taken: list[memoryview] = []
        need = min(size, self.pending)
        self.pending -= need
        while need:
            piece = self.pieces[0]
            if len(piece) <= need:
                taken.append(self.pieces.popleft())
                need -= len(piece)
            else:
                taken.append(piece[:need])
                self.pieces[0] = piece[need:]
                need = 0
        return b"".join(taken)

    def _send(self, part: bytes) -> None:
        storage = self.storage
        if self.upload_id is None:
            answer = storage._call(f"uploading {self.key}", "create_multipart_upload", Key=self.s3_key)
            self.upload_id = answer["UploadId"]
            self.pool = ThreadPoolExecutor(PARALLEL_PARTS, thread_name_prefix="pave-s3-part")
        failed = next((f for f in self.parts if f.done() and f.exception() is not None), None)
        if failed is not None:
            raise failed.exception()  # type: ignore[misc]
        self.slots.acquire()  # at most PARALLEL_PARTS parts held in memory and in flight
        number = len(self.parts) + 1
        assert self.pool is not None
        future = self.pool.submit(self._part, number, part)
        future.add_done_callback(lambda _: self.slots.release())
        self.parts.append(future)

    def _part(self, number: int, data: bytes) -> dict[str, Any]:
        answer = self.storage._call(
            f"uploading part {number} of {self.key}",
            "upload_part",
            Key=self.s3_key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _commit(self) -> ObjectInfo:
        storage = self.storage
        if self.upload_id is None:
            body = self._take(self.pending)
            answer = storage._call(f"uploading {self.key}", "put_object", Key=self.s3_key, Body=body)
            return ObjectInfo(self.key, self.size, answer.get("ETag"))
        if self.pending:
            self._send(self._take(self.pending))
        parts = [future.result() for future in self.parts]  # raises the first part's error
        answer = storage._call(
            f"uploading {self.key}",
            "complete_multipart_upload",
            Key=self.s3_key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": parts},
        )
        self._close_pool()
        return ObjectInfo(self.key, self.size, answer.get("ETag"))

    def _abort(self) -> None:
        self.pieces.clear()
        self.pending = 0
        self._close_pool()
        if self.upload_id is not None:
            try:
                self.storage.client.abort_multipart_upload(
                    Bucket=self.storage.bucket, Key=self.s3_key, UploadId=self.upload_id
                )
            except Exception:  # the store is gone; its lifecycle rules clean up orphan parts
                return

    def _close_pool(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
