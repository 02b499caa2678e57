"""Data sources beyond the project folder, end to end on real servers: a query on the real
PostgreSQL, an object in moto's S3 server, a URL on a local HTTP server with ETags. Each run
versions the data by content hash, records the source's fingerprint, and reproduces with the
identical data version; each bad source is one error naming the dataset, the source and the fix."""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient
from sqlalchemy import create_engine, text

from pave.config import Settings
from pave.data.errors import SourceInvalid, SourceMissing, SourceUnreachable
from pave.data.remote import Guard, fingerprint
from pave.data.sources import SourceSpec
from pave.errors import InvalidInput, MissingExtra, PaveError
from pave.governance.egress import EgressPolicy
from pave.pipelines import execute_project, reproduce
from pave.pipelines.spec_file import parse_spec
from pave_testing import POSTGRES_URL, S3Server, drop_schemas, free_port

ProjectFactory = Callable[..., Path]


# --- servers the tests start -----------------------------------------------------------------------


class Files:
    """A local HTTP server of in-memory files with strong ETags (HEAD and GET; 404 otherwise)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.heads = 0
        self.gets = 0
        self.etags = True  # False: a server that sends no validator at all
        files = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bool) -> None:
                data = files.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                if files.etags:
                    self.send_header("ETag", f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:
                files.heads += 1
                self._answer(body=False)

            def do_GET(self) -> None:
                files.gets += 1
                self._answer(body=True)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def files() -> Iterator[Files]:
    server = Files()
    yield server
    server.close()


@pytest.fixture
def table(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A table on the real PostgreSQL with the churn rows; ${PAVE_TEST_SOURCE_URL} reaches it."""
    schema = f"pave_src{secrets.token_hex(4)}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    monkeypatch.setenv("PAVE_TEST_SOURCE_URL", POSTGRES_URL)
    yield f'"{schema}".churn'
    engine.dispose()
    drop_schemas(schema)


def fill(table: str, frame: pd.DataFrame) -> None:
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(
            text(f"CREATE TABLE {table} (id serial primary key, age int, income float, plan text, churn int)")
        )
        conn.execute(
            text(f"INSERT INTO {table} (age, income, plan, churn) VALUES (:age, :income, :plan, :churn)"),  # noqa: S608
            frame.to_dict("records"),
        )
    engine.dispose()


def with_source(source: str) -> Callable[[Path], None]:
    """Point the churn project's `train` source at ``source`` (YAML flow mapping) and drop the file."""

    def edit(root: Path) -> None:
        spec = root / "pave.yaml"
        spec.write_text(spec.read_text().replace("train: {path: data/train.csv}", f"train: {source}"))
        (root / "data" / "train.csv").unlink()

    return edit


def run_and_reproduce(root: Path, tracking_uri: str, settings: Settings) -> tuple[Any, Any]:
    original = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    again = reproduce(original.run_id, tracking_uri=tracking_uri, settings=settings)
    assert again.identical, again.metrics
    assert again.run.data_versions == original.data_versions
    return original, again


# --- one run per kind ----------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_sql_source_is_versioned_fingerprinted_and_reproduced(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings, table: str, churn_frame: Any
) -> None:
    fill(table, churn_frame())
    query = f"select age, income, plan, churn from {table} order by id"  # noqa: S608
    root = churn_project(gates="  []")
    with_source(f"{{sql: {{url: '${{PAVE_TEST_SOURCE_URL}}', query: '{query}'}}}}")(root)
    original, _again = run_and_reproduce(root, tracking_uri, settings)
    tags = MlflowClient(tracking_uri).get_run(original.run_id).data.tags
    source = parse_spec((root / "pave.yaml").read_text()).data.sources["train"]
    assert tags["pave.fingerprint.train"] == original.fingerprints["train"] == fingerprint("train", source)
    assert original.fingerprints["train"].startswith("rows:240;md5:")
    # the lineage names the variable, never the URL it holds
    versions = MlflowClient(tracking_uri).download_artifacts(original.run_id, "data/versions.json")
    assert "${PAVE_TEST_SOURCE_URL}" in Path(versions).read_text()
    assert POSTGRES_URL not in Path(versions).read_text()
    # one changed row: another fingerprint and another version; the same rows: the same version
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {table} SET income = income + 1 WHERE id = 1"))  # noqa: S608
    engine.dispose()
    assert fingerprint("train", source) != original.fingerprints["train"]
    second = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert second.data_versions["train"] != original.data_versions["train"]
    third = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert third.data_versions == second.data_versions


@pytest.mark.postgres
def test_a_fingerprint_query_is_what_stands_for_the_data(
    table: str, churn_frame: Any, tmp_path: Path
) -> None:
    from pave.data.remote import materialise

    fill(table, churn_frame(rows=20))
    source = SourceSpec.model_validate(
        {
            "sql": {
                "url": "${PAVE_TEST_SOURCE_URL}",
                "query": f"select age, income, plan, churn from {table} order by id",  # noqa: S608
                "fingerprint": f"select max(id), count(*) from {table}",  # noqa: S608
            }
        }
    )
    got = materialise("train", source, tmp_path)
    assert len(pd.read_parquet(got.path)) == 20
    assert got.fingerprint == fingerprint("train", source)
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:  # a change the cheap query does not see: the trade-off it makes
        conn.execute(text(f"UPDATE {table} SET income = 0 WHERE id = 1"))  # noqa: S608
    assert fingerprint("train", source) == got.fingerprint
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {table} (age, income, plan, churn) VALUES (30, 1.0, 'pro', 0)"))  # noqa: S608
    engine.dispose()
    assert fingerprint("train", source) != got.fingerprint


def test_an_s3_source_is_versioned_fingerprinted_and_reproduced(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings, s3: S3Server, churn_frame: Any
) -> None:
    bucket = f"src-{secrets.token_hex(4)}"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="churn/train.csv", Body=churn_frame().to_csv(index=False).encode())
    root = churn_project(gates="  []")
    with_source(f"{{url: s3://{bucket}/churn/train.csv}}")(root)
    original, _ = run_and_reproduce(root, tracking_uri, settings)
    etag = client.head_object(Bucket=bucket, Key="churn/train.csv")["ETag"]
    assert original.fingerprints["train"] == f"etag:{etag}"
    source = SourceSpec(url=f"s3://{bucket}/churn/train.csv")
    assert fingerprint("train", source) == original.fingerprints["train"]
    client.put_object(
        Bucket=bucket, Key="churn/train.csv", Body=churn_frame(seed=1).to_csv(index=False).encode()
    )
    assert fingerprint("train", source) != original.fingerprints["train"]


def test_an_https_source_is_versioned_fingerprinted_and_reproduced(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings, files: Files, churn_frame: Any
) -> None:
    files.files["/exports/train.csv"] = churn_frame().to_csv(index=False).encode()
    root = churn_project(gates="  []")
    with_source(f"{{url: {files.url}/exports/train.csv}}")(root)
    original, again = run_and_reproduce(root, tracking_uri, settings)
    assert (
        original.fingerprints["train"]
        == f'etag:"{hashlib.md5(files.files["/exports/train.csv"], usedforsecurity=False).hexdigest()}"'
    )
    heads = files.heads
    assert (
        fingerprint("train", SourceSpec(url=f"{files.url}/exports/train.csv"))
        == original.fingerprints["train"]
    )
    assert files.heads == heads + 1  # a HEAD, not a download
    assert again.run.fingerprints == {}  # a reproduction reads the stored version, not the source


def test_a_url_without_validators_is_fingerprinted_by_its_body(files: Files, churn_frame: Any) -> None:
    files.etags = False
    body = churn_frame().to_csv(index=False).encode()
    files.files["/train.csv"] = body
    source = SourceSpec(url=f"{files.url}/train.csv")
    assert fingerprint("train", source) == f"sha256:{hashlib.sha256(body).hexdigest()}"
    # the control plane downloads no dataset to compare it: such a URL is not checked there
    guard = Guard(EgressPolicy(allowed_networks=("127.0.0.1/32",)), [])
    with pytest.raises(SourceInvalid, match="sends no ETag or Last-Modified"):
        fingerprint("train", source, guard=guard)


def test_an_unreachable_object_store_names_the_setting(monkeypatch: pytest.MonkeyPatch, s3: S3Server) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SourceUnreachable) as caught:
        fingerprint("train", SourceSpec(url="s3://lake/train.csv"))
    assert "data source train (s3://lake/train.csv)" in caught.value.message
    assert "AWS_ENDPOINT_URL" in (caught.value.hint or "")


TUNE_STEPS = """
def fit(df, c: float) -> float:
    return float(df["x"].sum()) - (c - 1.0) ** 2


def evaluate(score: float) -> dict:
    return {"score": score}
"""


def test_a_study_reads_its_sources_once_and_every_trial_sees_that_version(
    make_project: ProjectFactory, tracking_uri: str, settings: Settings, files: Files
) -> None:
    from pave.pipelines.tune import tune_project

    files.files["/x.csv"] = b"x\n1\n2\n3\n"
    root = make_project(
        {
            "steps.py": TUNE_STEPS,
            "pave.yaml": f"""
                name: tune-src
                data:
                  sources:
                    train: {{url: {files.url}/x.csv}}
                steps:
                  - {{name: fit, function: steps:fit, inputs: {{df: data.train}}, params: {{c: 0.0}}}}
                  - {{name: evaluate, function: steps:evaluate, inputs: {{score: fit}}}}
                metrics: {{step: evaluate, primary: score}}
                tune:
                  metric: score
                  trials: 3
                  pruner: none
                  params:
                    fit.c: {{type: float, low: 0.0, high: 2.0}}
            """,
        }
    )
    result = tune_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert files.gets == 1  # read once, when the study started
    client = MlflowClient(tracking_uri)
    runs = [client.get_run(t.run_id) for t in result.trials if t.run_id] + [client.get_run(result.run.run_id)]
    assert len(runs) == 4
    assert {r.data.tags["pave.data.train"] for r in runs} == {
        hashlib.sha256(files.files["/x.csv"]).hexdigest()
    }
    assert {r.data.tags["pave.fingerprint.train"] for r in runs} == {
        f'etag:"{hashlib.md5(files.files["/x.csv"], usedforsecurity=False).hexdigest()}"'
    }


# --- bad sources ------------------------------------------------------------------------------------------


def run_error(root: Path, tracking_uri: str, settings: Settings) -> PaveError:
    with pytest.raises(PaveError) as caught:
        execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    return caught.value


@pytest.mark.parametrize(
    ("source", "error", "fragments"),
    [
        (
            "{url: s3://BUCKET/nothing.csv}",
            SourceMissing,
            ["data source train", "does not exist", "upload it"],
        ),
        ("{url: s3://no-such-bucket-pave/x.csv}", SourceMissing, ["no-such-bucket-pave", "does not exist"]),
        ("{url: FILES/missing.csv}", SourceMissing, ["answered 404", "data.sources.train.url"]),
        ("{url: http://127.0.0.1:PORT/x.csv}", SourceUnreachable, ["no answer", "check the host"]),
    ],
)
def test_bad_objects_fail_the_run_naming_the_dataset_source_and_fix(
    churn_project: ProjectFactory,
    tracking_uri: str,
    settings: Settings,
    s3: S3Server,
    files: Files,
    source: str,
    error: type[PaveError],
    fragments: list[str],
) -> None:
    bucket = f"src-{secrets.token_hex(4)}"
    s3.client().create_bucket(Bucket=bucket)
    source = source.replace("BUCKET", bucket).replace("FILES", files.url).replace("PORT", str(free_port()))
    root = churn_project(gates="  []")
    with_source(source)(root)
    failed = run_error(root, tracking_uri, settings)
    assert isinstance(failed, error), failed
    text_ = f"{failed.message} {failed.hint}"
    for fragment in fragments:
        assert fragment in text_
    assert getattr(failed, "run_id", None)  # recorded FAILED, nothing registered


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sql", "error", "fragments"),
    [
        (
            '{url: "${PAVE_TEST_SOURCE_URL}", query: "select * from no_such_table"}',
            SourceInvalid,
            ["no_such_table", "sql.query"],
        ),
        (
            '{url: "${PAVE_TEST_UNSET_URL}", query: "select 1"}',
            SourceInvalid,
            ["PAVE_TEST_UNSET_URL is not set", "export"],
        ),
        (
            '{url: "postgresql+psycopg://nobody@127.0.0.1:PORT/x", query: "select 1"}',
            SourceUnreachable,
            ["does not answer"],
        ),
        (
            '{url: "mysql+nosuchdriver://u@h/db", query: "select 1"}',
            SourceInvalid,
            ["nosuchdriver", "dialect"],
        ),
        (
            '{url: "mysql+pymysql://u@h/db", query: "select 1"}',
            SourceInvalid,
            ["not installed", "pip install"],
        ),
    ],
)
def test_bad_queries_fail_the_run_naming_the_dataset_source_and_fix(
    churn_project: ProjectFactory,
    tracking_uri: str,
    settings: Settings,
    table: str,
    sql: str,
    error: type[PaveError],
    fragments: list[str],
) -> None:
    root = churn_project(gates="  []")
    with_source("{sql: " + sql.replace("PORT", str(free_port())) + "}")(root)
    failed = run_error(root, tracking_uri, settings)
    assert isinstance(failed, error), failed
    text_ = f"{failed.message} {failed.hint}"
    assert "data source train" in text_
    for fragment in fragments:
        assert fragment in text_
    assert POSTGRES_URL not in text_


def test_s3_sources_without_boto3_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "boto3", None)  # as if the extra were not installed
    with pytest.raises(MissingExtra) as caught:
        fingerprint("train", SourceSpec(url="s3://b/k.csv"))
    assert caught.value.hint == "pip install 'pave[s3]'"


# --- the spec --------------------------------------------------------------------------------------------

BASE = """
name: demo
data:
  sources:
    train: {source}
steps:
  - {{name: fit, function: steps:fit, inputs: {{df: data.train}}}}
"""


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("{sql: {url: 'postgresql://bob:hunter2@db/shop', query: 'select 1'}}", "holds a password"),
        ("{url: 'https://bob:pw@example.org/x.csv'}", "carries credentials"),
        ("{url: 'ftp://example.org/x.csv'}", "s3://bucket/key or https://"),
        ("{url: 's3://bucket'}", "names a bucket but no object"),
        ("{url: 'https://example.org/export'}", "cannot tell the format"),
        ("{path: data/x.csv, url: 'https://example.org/x.csv'}", "one of path, url or sql"),
        ("{}", "one of path, url or sql"),
    ],
)
def test_the_spec_refuses_sources_that_would_leak_or_cannot_work(source: str, fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_spec(BASE.format(source=source))
    assert fragment in caught.value.message
    assert "hunter2" not in caught.value.message


def test_the_spec_reads_each_kind_and_retrain_on_data_change() -> None:
    text_ = BASE.format(source="{sql: {url: '${DB}', query: 'select 1'}}") + "retrain: {on: [data_change]}\n"
    spec = parse_spec(text_)
    source = spec.data.sources["train"]
    assert (source.kind, source.file_format, source.where) == ("sql", "parquet", "sql ${DB}")
    assert spec.retrain is not None
    assert spec.retrain.on == ["data_change"]
    ok = "{sql: {url: 'postgresql+psycopg://bob:${DB_PASSWORD}@db/shop', query: 'select 1'}}"
    assert parse_spec(BASE.format(source=ok)).data.sources["train"].kind == "sql"
    assert SourceSpec(url="s3://b/a/b.parquet").kind == "s3"
    assert SourceSpec(url="https://example.org/x.csv").file_format == "csv"
    with pytest.raises(InvalidInput):
        parse_spec(BASE.format(source="{path: data/x.csv}") + "retrain: {on: [code_change]}\n")
