"""Train on data change, end to end on a started platform: a golden-path project whose training
data is an object in moto's S3 server. The client runs it once; the object is overwritten; the
control plane's own loop notices (ETag), retrains on the new data and registers the version; the
client reproduces the retrain's run with the identical data version."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from pave_testing import PaveServer, S3Server, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

AWS = ["AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"]


def _turns(env: dict[str, str], name: str) -> list[dict[str, Any]]:
    result = run_pave("loop", name, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["runs"])


def _finished_turn(env: dict[str, str], name: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    turns: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        turns = _turns(env, name)
        if turns and turns[-1]["state"] not in ("queued", "starting", "training", "rolling_out"):
            return turns[-1]
        time.sleep(1)
    raise AssertionError(f"no data_change turn finished: {json.dumps(turns, indent=1)[-4000:]}")


def test_an_overwritten_object_retrains_and_the_retrain_reproduces(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"lake-{secrets.token_hex(4)}"
    s3 = s3_server.client()
    s3.create_bucket(Bucket=bucket)
    server = PaveServer.up(
        tmp_path / "platform",
        PAVE_SOURCE_CHECK_INTERVAL="1",
        PAVE_SOURCE_ENV=json.dumps(AWS),  # the retrains read the bucket with these
        **s3_server.env,
    )
    try:
        env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}
        name = "data-change"
        project = tmp_path / name
        created = run_pave("new", name, "-t", "tabular-classification", "--dir", str(project), env=env)
        assert created.returncode == 0, created.stderr
        frame = pd.read_csv(project / "data" / "train.csv")
        s3.put_object(Bucket=bucket, Key="churn/train.csv", Body=frame.to_csv(index=False).encode())
        (project / "data" / "train.csv").unlink()
        doc = yaml.safe_load((project / "pave.yaml").read_text())
        doc["data"]["sources"]["train"] = {"url": f"s3://{bucket}/churn/train.csv"}
        doc["gates"] = []
        doc["retrain"] = {"on": ["data_change"]}
        (project / "pave.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))

        first = run_pave("run", str(project), "--json", env=env, timeout=600)
        assert first.returncode == 0, first.stderr[-3000:]
        before = json.loads(first.stdout)
        etag = s3.head_object(Bucket=bucket, Key="churn/train.csv")["ETag"]
        assert before["fingerprints"] == {"train": f"etag:{etag}"}
        assert _turns(env, name) == []

        changed = frame.sample(frac=0.9, random_state=1)  # new data: fewer rows, another order
        s3.put_object(Bucket=bucket, Key="churn/train.csv", Body=changed.to_csv(index=False).encode())
        turn = _finished_turn(env, name)
        assert turn["trigger"] == "data_change", turn
        assert turn["state"] == "registered", turn  # no deployment to roll out to
        event = next(e for e in turn["history"] if e["event"] == "data_changed")
        assert event["sources"] == ["train"]
        assert event["recorded"] == before["fingerprints"]
        assert event["since_run"] == before["run_id"]
        assert turn["model_version"] == "2"

        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
        client = MlflowClient(f"{server.url}/mlflow")
        tags = client.get_run(turn["run_id"]).data.tags
        new_etag = s3.head_object(Bucket=bucket, Key="churn/train.csv")["ETag"]
        assert tags["pave.fingerprint.train"] == f"etag:{new_etag}"
        assert tags["pave.data.train"] != before["data_versions"]["train"]

        # the object is gone; the client reproduces the retrain's run from the stored version
        s3.delete_object(Bucket=bucket, Key="churn/train.csv")
        again = run_pave("reproduce", turn["run_id"], "--json", env=env, timeout=600)
        assert again.returncode == 0, again.stderr[-3000:]
        reproduced = json.loads(again.stdout)
        assert reproduced["identical"], reproduced
        assert reproduced["run"]["data_versions"]["train"] == tags["pave.data.train"]
    finally:
        server.stop()
