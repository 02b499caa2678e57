"""Where a dataset comes from: a project file, an ``s3://`` or ``https://`` object, or a SQL query.

One entry of ``data.sources`` in ``pave.yaml`` names exactly one of::

    train:   {path: data/train.csv}                        # a file in the project folder
    events:  {url: s3://bucket/events/2026-12.parquet}     # an object (boto3, the AWS_* variables)
    labels:  {url: https://example.org/labels.csv}         # a URL, downloaded streamed (httpx)
    orders:
      sql:
        url: ${WAREHOUSE_URL}                              # a SQLAlchemy URL; ${VAR} from the environment
        query: select id, amount, label from orders order by id

Whatever the kind, the pipeline materialises the source to a file (:mod:`pave.data.remote`) that
is versioned by the sha256 of its bytes exactly like a project file. Secrets never go in
``pave.yaml`` (it is stored with every run): a SQL URL with a password must take it from an
environment variable, and ``s3://``/``https://`` URLs may carry no credentials at all.
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Kind = Literal["file", "s3", "https", "sql"]
URL_SCHEMES = ("s3", "https", "http")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def check_relative_path(value: str) -> str:
    """Refuse paths that could leave the project folder: absolute, ``..``, NUL, backslashes."""
    if not value or "\x00" in value:
        raise ValueError("must be a non-empty path without NUL characters")
    if "\\" in value:
        raise ValueError("use forward slashes ('/') in paths")
    path = PurePosixPath(value)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", value):
        raise ValueError("must be relative to the project folder, not absolute")
    if ".." in path.parts:
        raise ValueError("must not contain '..': data files live inside the project folder")
    return value


def variables(text: str) -> list[str]:
    """The ``${VAR}`` names ``text`` refers to."""
    return _VARIABLE.findall(text)


def expand(text: str, environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """``text`` with every ``${VAR}`` replaced from ``environ`` (KeyError naming a missing one)."""
    env = os.environ if environ is None else environ
    return _VARIABLE.sub(lambda m: env[m.group(1)], text)


class SqlSpec(_Model):
    """A SQL query against a SQLAlchemy URL; its result is the dataset."""

    url: str = Field(
        min_length=1,
        description=(
            "SQLAlchemy URL, e.g. postgresql+psycopg://reader@db/shop or ${WAREHOUSE_URL}: ${VAR} is read "
            "from the environment of the machine that runs the pipeline (a password must come from there)."
        ),
    )
    query: str = Field(min_length=1, description="The query; give it an ORDER BY for a stable version.")
    fingerprint: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "A cheap query whose result changes when the data does, e.g. select max(updated_at), count(*) "
            "from orders: what data_change compares (default: a checksum of the query's rows)."
        ),
    )

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        # Mask the variables, then look for a password that is written out in the spec.
        masked = _VARIABLE.sub("VAR", value)
        match = re.match(r"^[A-Za-z0-9+._-]+://([^/@]*)@", masked)
        if match and ":" in match.group(1):
            written = value.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
            if not _VARIABLE.fullmatch(written):
                raise ValueError(
                    "the URL holds a password, which would be stored with every run: write it as "
                    "${VAR} (e.g. url: ${WAREHOUSE_URL}) and set the variable where the pipeline runs"
                )
        if "://" not in masked and masked != "VAR":
            raise ValueError(
                "not a SQLAlchemy URL: write e.g. postgresql+psycopg://user@host/db or ${DB_URL}"
            )
        return value


class SourceSpec(_Model):
    """One dataset: a project file (``path``), an object (``url``) or a query (``sql``)."""

    path: str | None = Field(
        default=None, description="File path relative to the project folder (no '..', not absolute)."
    )
    url: str | None = Field(
        default=None,
        description="s3://bucket/key (boto3, AWS_* variables) or https://host/file, downloaded by the run.",
    )
    sql: SqlSpec | None = Field(default=None, description="A query whose result is the dataset.")
    format: Literal["csv", "parquet"] | None = Field(
        default=None,
        description="csv or parquet; default: from the file or URL suffix (a query: parquet).",
    )

    @field_validator("path")
    @classmethod
    def _safe_path(cls, value: str | None) -> str | None:
        return None if value is None else check_relative_path(value)

    @field_validator("url")
    @classmethod
    def _object_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in URL_SCHEMES:
            raise ValueError("url must be s3://bucket/key or https://host/path (a project file: use path)")
        if not parts.hostname:
            raise ValueError(f"url {value!r} names no {'bucket' if parts.scheme == 's3' else 'host'}")
        if parts.username or parts.password:
            raise ValueError(
                "the url carries credentials, which would be stored with every run: "
                "for s3:// set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY where the pipeline runs"
            )
        if parts.scheme == "s3" and not parts.path.strip("/"):
            raise ValueError(f"url {value!r} names a bucket but no object: write s3://bucket/key")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> SourceSpec:
        given = [k for k in ("path", "url", "sql") if getattr(self, k) is not None]
        if len(given) != 1:
            named = " and ".join(given) if given else "none of them"
            raise ValueError(f"a source is one of path, url or sql (got {named})")
        if self.file_format is None:
            raise ValueError("cannot tell the format from the suffix: add format: csv or format: parquet")
        return self

    @property
    def kind(self) -> Kind:
        """file, s3, https (plain http too) or sql."""
        if self.sql is not None:
            return "sql"
        if self.url is not None:
            return "s3" if self.url.startswith("s3://") else "https"
        return "file"

    @property
    def file_format(self) -> Literal["csv", "parquet"] | None:
        """The effective format: explicit, else from the suffix (parquet for a query)."""
        if self.format is not None:
            return self.format
        if self.sql is not None:
            return "parquet"
        name = self.path if self.path is not None else urlsplit(self.url or "").path
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in (".csv", ".tsv", ".txt") or name.lower().endswith(".csv.gz"):
            return "csv"
        if suffix in (".parquet", ".pq"):
            return "parquet"
        return None

    @property
    def where(self) -> str:
        """The source as written in pave.yaml, safe to print and to record (no secret in it)."""
        if self.sql is not None:
            return f"sql {self.sql.url}"
        return self.url or self.path or ""
