"""POST /api/v1/projects/P/batch against a real `pave up`: the job runs as a worker process of the
platform's job executor (never in the control plane), reads and writes S3 (moto's server), and
records itself like any `pave batch`."""

from __future__ import annotations

import io
import json
import secrets
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from pave.client import Client
from pave.errors import InvalidInput
from pave.schemas.serving import BatchJobOut
from pave.serving.inference_log import read_inference_log
from pave_testing import PaveServer, S3Server, register_sklearn

pytestmark = pytest.mark.slow

AWS = ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"]
PROJECT = "batch-api"


def _finished(client: Client, key: str, timeout: float = 600) -> BatchJobOut:
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = client.batch_job(PROJECT, key)
        if job.state != "running":
            return job
        time.sleep(1)
    raise AssertionError(f"the batch job did not finish: {job.model_dump_json()[-3000:] if job else ''}")


def test_a_batch_job_submitted_through_the_api_scores_s3_in_a_worker(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"scoring-{secrets.token_hex(4)}"
    s3 = s3_server.client()
    s3.create_bucket(Bucket=bucket)
    server = PaveServer.up(tmp_path / "platform", PAVE_SOURCE_ENV=json.dumps(AWS), **s3_server.env)
    try:
        rng = np.random.default_rng(3)
        frame = pd.DataFrame(rng.normal(size=(5000, 6)), columns=[f"f{i}" for i in range(6)])
        model = LogisticRegression().fit(frame, (frame["f0"] > frame["f1"]).astype(int))
        with Client(url=server.url, token=server.token) as client:
            client.create_project(PROJECT, owner="admin", description="batch through the API")
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
        register_sklearn(server.url, PROJECT, model, frame)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, row_group_size=1000)
        s3.put_object(Bucket=bucket, Key="in/table.parquet", Body=buffer.getvalue())

        with Client(url=server.url, token=server.token) as client:
            with pytest.raises(InvalidInput) as refused:  # a worker never reads the control plane's files
                client.batch_submit(PROJECT, str(tmp_path / "in.parquet"), f"s3://{bucket}/out.parquet")
            assert "object storage" in refused.value.message
            started = client.batch_submit(
                PROJECT,
                f"s3://{bucket}/in/table.parquet",
                f"s3://{bucket}/out/scored.parquet",
                version="1",
                monitor=True,
            )
            assert started.state == "running"
            assert started.monitor
            job = _finished(client, started.job)
            assert job.state == "succeeded", job
            assert job.result is not None
            assert job.result["rows"] == len(frame)
            # its sample reached the control plane's log (the worker has no access to that folder)
            assert job.result["monitored"] == len(frame)
            logged = read_inference_log(server.home / "inference-log", deployment=PROJECT)
            assert sum(len(outputs["predict"]) for outputs in logged["outputs"]) == len(frame)
            listed = client.list_batch_jobs(PROJECT)
            # the job's 12-hour token ended with the job
            (token,) = [t for t in client.list_tokens() if t.name.endswith(f"({started.job})")]
            assert token.revoked_at is not None
            # the submission is in the audit chain, with who asked
            posts = [e for e in client.audit(project=PROJECT) if e.path.endswith(f"/{PROJECT}/batch")]
            assert sorted((e.method, e.status, e.identity) for e in posts) == [
                ("POST", 202, "admin"),
                ("POST", 400, "admin"),
            ]
        assert job.result["run_id"] in [j.run_id for j in listed]
        scored = pd.read_parquet(
            io.BytesIO(s3.get_object(Bucket=bucket, Key="out/scored.parquet")["Body"].read())
        )
        assert len(scored) == len(frame)
        assert (scored["predict"].to_numpy() == model.predict(frame)).all()
    finally:
        server.stop()
