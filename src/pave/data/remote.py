"""Sources beyond the project folder: materialised to a file, and fingerprinted cheaply.

:func:`materialise` turns a source of ``pave.yaml`` (:mod:`pave.data.sources`) into a local file
that :func:`pave.data.versioning.version_file` versions by content hash like any project file,
and returns the source's fingerprint as of that read. :func:`fingerprint` computes the same
fingerprint without downloading anything (what ``retrain: {on: [data_change]}`` compares):

============  ===========================================  =========================================
kind          materialised by                              fingerprint
============  ===========================================  =========================================
file          (the project file itself)                    ``sha256:<digest>`` of its bytes
s3            boto3 (``AWS_*`` variables), streamed         ``etag:<ETag>`` (HEAD)
https         httpx, streamed                              ``etag:<ETag>``, else
                                                           ``modified:<Last-Modified>;size:<n>`` (HEAD)
sql           SQLAlchemy, rows streamed to Parquet or CSV  ``rows:<n>;md5:<digest of the rows>`` (of
                                                           ``sql.fingerprint``'s rows when given)
============  ===========================================  =========================================

Every failure is one error naming the dataset, the source (never a password: ``${VAR}`` as
written) and the fix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from pave.data.errors import SourceInvalid, SourceMissing, SourceUnreachable
from pave.data.sources import SourceSpec, expand, variables
from pave.errors import InvalidInput, MissingExtra, PaveError

_CHUNK = 1 << 20
T = TypeVar("T")
_ROWS = 10_000
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
HTTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Materialised:
    """A source brought to a local file."""

    path: Path
    filename: str  # the name it is stored under
    fingerprint: str | None  # None for a project file: its digest is its version


def materialise(name: str, source: SourceSpec, folder: Path) -> Materialised:
    """Download or query the non-file source ``name`` into ``folder``.

    Raises:
        SourceMissing: no such object or URL (404).
        SourceUnreachable: the host, object store or database does not answer.
        SourceInvalid: bad SQL, a missing driver or variable, refused credentials.
        MissingExtra: boto3 is not installed (an s3:// source).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if source.kind == "s3":
        return _s3_materialise(name, source, folder)
    if source.kind == "https":
        return _http_materialise(name, source, folder)
    if source.kind == "sql":
        return _sql_materialise(name, source, folder)
    raise InvalidInput(f"data source {name} is a project file, not a remote source")


def fingerprint(name: str, source: SourceSpec, *, guard: Guard | None = None) -> str:
    """The source's fingerprint now, read without downloading it (a query is run and hashed).

    ``guard`` is what the control plane passes: it refuses destinations and variables that the
    platform does not allow (:class:`Guard`). File sources have no fingerprint here: the
    control plane never reads a project's folder.
    """
    if source.kind == "s3":
        if guard is not None:
            guard.check_bucket(name, source, _s3_parts(source)[0])
        return _s3_fingerprint(name, source)
    if source.kind == "https":
        return _http_fingerprint(name, source, guard)
    if source.kind == "sql":
        return _sql_fingerprint(name, source, guard)
    raise InvalidInput(f"data source {name} is a project file: its fingerprint is its digest")


class Guard:
    """What the control plane allows when it fingerprints a project's sources.

    Args:
        egress: checks every host reached (public addresses, or the allowed networks).
        own_buckets: the platform's own buckets, which its credentials read and no source may name.
        variables: the only ``${VAR}`` names it expands (its own environment holds its secrets),
            and only as a whole URL: a variable inside a URL the spec writes could carry a
            secret to any host.
    """

    def __init__(self, egress: Any, variables: Sequence[str], own_buckets: Sequence[str] = ()) -> None:
        self.egress, self.variables, self.own_buckets = egress, frozenset(variables), frozenset(own_buckets)

    def check_bucket(self, name: str, source: SourceSpec, bucket: str) -> None:
        if bucket in self.own_buckets:  # its credentials read it: no project looks into it this way
            raise SourceInvalid(
                f"data source {name} ({source.where}): the bucket is the platform's own store",
                hint="keep datasets in a bucket of their own",
            )

    def expand(self, name: str, source: SourceSpec, text: str) -> str:
        named = variables(text)
        if named and text.strip() != f"${{{named[0]}}}":
            # `postgresql://u:${SECRET}@elsewhere/db` would send the secret wherever the spec says
            raise SourceInvalid(
                f"data source {name} ({source.where}): the control plane expands a variable only as the "
                "whole URL",
                hint="write url: ${WAREHOUSE_URL} and set the whole URL in that variable",
            )
        refused = [v for v in named if v not in self.variables]
        if refused:
            raise SourceInvalid(
                f"data source {name} ({source.where}): the control plane does not expand ${{{refused[0]}}}",
                hint=f"list it in the control plane's PAVE_SOURCE_ENV (and set {refused[0]} there)",
            )
        return text

    def check_host(self, name: str, source: SourceSpec, host: str | None, port: int | None) -> None:
        if not host:
            raise SourceInvalid(
                f"data source {name} ({source.where}): no host the control plane could check",
                hint="name the database by host and port (a socket or file is local to one machine)",
            )
        self.egress.check(f"http://{host}:{port or 80}/")


# --- s3:// -------------------------------------------------------------------------------------------


def _s3_parts(source: SourceSpec) -> tuple[str, str]:
    parts = urlsplit(source.url or "")
    return str(parts.hostname), unquote(parts.path.lstrip("/"))


def _s3_storage(name: str, source: SourceSpec) -> Any:
    try:
        import boto3  # noqa: F401
    except ImportError as exc:
        raise MissingExtra(f"data source {name} ({source.where})", "s3") from exc
    from pave.storage import open_storage

    bucket, _ = _s3_parts(source)
    return open_storage(f"s3://{bucket}")


def _s3_error(name: str, source: SourceSpec, exc: PaveError) -> PaveError:
    from pave.storage import BucketMissing, ObjectMissing, StorageDenied, StorageUnreachable

    where = f"data source {name} ({source.where})"
    if isinstance(exc, ObjectMissing | BucketMissing):
        return SourceMissing(
            f"{where}: the object does not exist", hint=f"upload it, or fix data.sources.{name}.url"
        )
    if isinstance(exc, StorageDenied):
        return SourceInvalid(
            f"{where}: the object store refused the credentials",
            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with read access) where the pipeline runs",
        )
    if isinstance(exc, StorageUnreachable):
        return SourceUnreachable(
            f"{where}: no object store answers", hint="check AWS_ENDPOINT_URL and that the store is up"
        )
    if isinstance(exc, InvalidInput):
        return SourceInvalid(f"{where}: {exc.message}", hint=f"fix data.sources.{name}.url")
    return SourceUnreachable(f"{where}: {exc.message}", hint=exc.hint)


def _s3_head(name: str, source: SourceSpec) -> tuple[Any, str, str]:
    storage = _s3_storage(name, source)
    _, key = _s3_parts(source)
    try:
        info = storage.head(key)
    except PaveError as exc:
        raise _s3_error(name, source, exc) from None
    if info is None:
        raise SourceMissing(
            f"data source {name} ({source.where}): the object does not exist",
            hint=f"upload it, or fix data.sources.{name}.url",
        )
    tag = f"etag:{info.etag}" if info.etag else f"modified:{info.modified};size:{info.size}"
    return storage, key, tag


def _s3_fingerprint(name: str, source: SourceSpec) -> str:
    return _s3_head(name, source)[2]


def _s3_materialise(name: str, source: SourceSpec, folder: Path) -> Materialised:
    storage, key, tag = _s3_head(name, source)
    filename = _filename(name, source, key)
    try:
        path = storage.download(key, folder / filename)
    except PaveError as exc:
        raise _s3_error(name, source, exc) from None
    return Materialised(path, filename, tag)


# --- https:// ------------------------------------------------------------------------------------------


def http_tag(headers: Any) -> str | None:
    """The fingerprint an HTTP answer's headers give: ETag, else Last-Modified and size."""
    etag = headers.get("etag")
    if etag:
        return f"etag:{etag}"
    modified = headers.get("last-modified")
    if modified:
        return f"modified:{modified};size:{headers.get('content-length', '?')}"
    return None


def _http_error(name: str, source: SourceSpec, status: int) -> PaveError:
    where = f"data source {name} ({source.where})"
    if status in (404, 410):
        return SourceMissing(f"{where}: the server answered {status}", hint=f"fix data.sources.{name}.url")
    if status in (401, 403):
        return SourceInvalid(
            f"{where}: the server refused access ({status})",
            hint="serve the file without a login (signed URLs expire: prefer s3:// with AWS credentials)",
        )
    return SourceUnreachable(
        f"{where}: the server answered {status}", hint="retry when the server is healthy"
    )


def _unreachable(name: str, source: SourceSpec, exc: Exception) -> SourceUnreachable:
    return SourceUnreachable(
        f"data source {name} ({source.where}): no answer ({type(exc).__name__}: {str(exc)[:200]})",
        hint="check the host name and your network, then run again",
    )


def _http_materialise(name: str, source: SourceSpec, folder: Path) -> Materialised:
    import httpx

    url = source.url or ""
    filename = _filename(name, source, urlsplit(url).path)
    target = folder / filename
    digest = hashlib.sha256()
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=True) as client:
            head = client.head(url)
            tag = http_tag(head.headers) if head.status_code < 400 else None
            with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    raise _http_error(name, source, response.status_code)
                tag = tag or http_tag(response.headers)
                with target.open("wb") as out:
                    for chunk in response.iter_bytes(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
    except httpx.HTTPError as exc:
        target.unlink(missing_ok=True)
        raise _unreachable(name, source, exc) from None
    return Materialised(target, filename, tag or f"sha256:{digest.hexdigest()}")


def _http_fingerprint(name: str, source: SourceSpec, guard: Guard | None) -> str:
    import httpx

    url = source.url or ""
    try:
        if guard is not None:  # every hop checked against the platform's egress policy
            from pave.governance.egress import fetch

            head = fetch(guard.egress, "HEAD", url, timeout=HTTP_TIMEOUT)
        else:
            with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=True) as client:
                head = client.head(url)
        if head.status_code >= 400 and head.status_code not in (405, 501):
            raise _http_error(name, source, head.status_code)
        tag = http_tag(head.headers) if head.status_code < 400 else None
        if tag is None:  # no validator: the body's digest (not cheap, but right)
            if guard is not None:  # the control plane downloads no dataset to compare it
                raise SourceInvalid(
                    f"data source {name} ({source.where}): the server sends no ETag or Last-Modified",
                    hint="serve it with an ETag (web servers and object stores do), or retrain on a schedule",
                )
            with httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=True) as client:
                digest = hashlib.sha256()
                with client.stream("GET", url) as response:
                    if response.status_code >= 400:
                        raise _http_error(name, source, response.status_code)
                    for chunk in response.iter_bytes(_CHUNK):
                        digest.update(chunk)
                return f"sha256:{digest.hexdigest()}"
        return tag
    except httpx.HTTPError as exc:
        raise _unreachable(name, source, exc) from None


# --- sql -----------------------------------------------------------------------------------------------


def row_digest(columns: Sequence[str], batches: Iterable[Sequence[Any]]) -> str:
    """``rows:<n>;md5:<hex>`` over the column names and every row, in order (the query's ORDER BY)."""
    digest = hashlib.md5(usedforsecurity=False)
    digest.update(json.dumps(list(columns)).encode())
    count = 0
    for batch in batches:
        for row in batch:
            digest.update(json.dumps(list(row), default=str, separators=(",", ":")).encode() + b"\n")
            count += 1
    return f"rows:{count};md5:{digest.hexdigest()}"


def _sql_url(name: str, source: SourceSpec, guard: Guard | None) -> str:
    assert source.sql is not None
    text = source.sql.url if guard is None else guard.expand(name, source, source.sql.url)
    try:
        return expand(text)
    except KeyError as missing:
        variable = missing.args[0]
        raise SourceInvalid(
            f"data source {name} ({source.where}): the variable {variable} is not set",
            hint=f"export {variable}=postgresql+psycopg://USER:PASSWORD@HOST/DB where the pipeline runs",
        ) from None


def _engine(name: str, source: SourceSpec, url: str, guard: Guard | None) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    where = f"data source {name} ({source.where})"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SourceInvalid(
            f"{where}: not a SQLAlchemy URL", hint="write it as dialect+driver://user@host/database"
        ) from None
    if guard is not None:
        if parsed.get_backend_name() != "postgresql":
            raise SourceInvalid(
                f"{where}: the control plane fingerprints PostgreSQL queries only",
                hint="retrain this project on a schedule instead of on data_change",
            )
        guard.check_host(name, source, parsed.host, parsed.port or 5432)
    try:
        args = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
        return create_engine(parsed, connect_args=args, poolclass=_null_pool())
    except NoSuchModuleError:
        raise SourceInvalid(
            f"{where}: SQLAlchemy has no dialect {parsed.drivername!r}",
            hint="fix the URL's dialect (e.g. postgresql+psycopg://), or install its SQLAlchemy plugin",
        ) from None
    except ImportError as exc:
        raise SourceInvalid(
            f"{where}: the database driver for {parsed.drivername} is not installed ({exc.name or exc})",
            hint=f"pip install {exc.name or 'the driver'} where the pipeline runs",
        ) from None


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def _query(
    name: str,
    source: SourceSpec,
    guard: Guard | None,
    consume: Callable[[list[str], Any], T],
    query: str | None = None,
) -> T:
    """Run the source's query (or ``query``) and hand its column names and row batches to ``consume``
    (read-only, bounded in time, for the control plane); every database failure becomes a source error."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

    assert source.sql is not None
    engine = _engine(name, source, _sql_url(name, source, guard), guard)
    where = f"data source {name} ({source.where})"
    try:
        with engine.connect() as connection:
            if guard is not None:  # the platform runs no writes for anyone, and not for long
                connection.execute(text("SET TRANSACTION READ ONLY"))
                connection.execute(text("SET LOCAL statement_timeout = 300000"))
            result = connection.execution_options(stream_results=True).execute(
                text(query or source.sql.query)
            )
            if not result.returns_rows:
                raise SourceInvalid(f"{where}: the query returns no rows", hint="make it a SELECT")
            names = list(result.keys())  # (not `for c in result`: that would read the rows)
            return consume([str(c) for c in names], result.partitions(_ROWS))
    except OperationalError as exc:
        if "connect" in _first_line(exc).lower() or "timeout" in _first_line(exc).lower():
            raise SourceUnreachable(
                f"{where}: the database does not answer ({_first_line(exc)})",
                hint=f"check the host in data.sources.{name}.sql.url and that the database is up",
            ) from None
        raise _bad_sql(where, name, exc) from None
    except DBAPIError as exc:
        raise _bad_sql(where, name, exc) from None
    except SQLAlchemyError as exc:
        raise SourceInvalid(f"{where}: {_first_line(exc)}", hint=f"fix data.sources.{name}.sql") from None
    finally:
        engine.dispose()


def _first_line(exc: Any) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]


def _bad_sql(where: str, name: str, exc: Any) -> SourceInvalid:
    return SourceInvalid(
        f"{where}: the query failed: {_first_line(exc)}",
        hint=f"fix data.sources.{name}.sql.query (try it in psql first)",
    )


def _sql_fingerprint(name: str, source: SourceSpec, guard: Guard | None) -> str:
    """A checksum of the rows of ``sql.fingerprint`` when given (a cheap query such as
    ``select max(updated_at), count(*) from orders``), else of the query's own rows."""
    assert source.sql is not None
    return _query(name, source, guard, row_digest, query=source.sql.fingerprint)


def _sql_materialise(name: str, source: SourceSpec, folder: Path) -> Materialised:
    import pandas as pd

    file_format = source.file_format or "parquet"
    filename = f"{name}.{file_format}"
    rows: list[Any] = []

    def keep(batches: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
        for batch in batches:
            rows.extend(tuple(row) for row in batch)
            yield batch

    assert source.sql is not None
    # the cheap query first: a change in between costs at most one more retrain, never a missed one
    stated = _sql_fingerprint(name, source, None) if source.sql.fingerprint else None

    def write(columns: list[str], batches: Any) -> Materialised:
        tag = row_digest(columns, keep(batches))
        tag = stated or tag
        frame = pd.DataFrame.from_records(rows, columns=columns)
        target = folder / filename
        if file_format == "parquet":
            frame.to_parquet(target, index=False)
        else:
            frame.to_csv(target, index=False)
        return Materialised(target, filename, tag)

    return _query(name, source, None, write)


def _filename(name: str, source: SourceSpec, key: str) -> str:
    """The object's own file name when it is a plain one; else the source's name and format."""
    base = PurePosixPath(unquote(key)).name
    return base if _FILENAME.fullmatch(base) and base != "manifest.json" else f"{name}.{source.file_format}"
