"""Batch scoring over Parquet and CSV, local and in S3, through the gateway's predict path."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient

from conftest import Models
from pave.errors import InvalidInput, NotFound
from pave.serving import batch, batch_io, batch_score
from pave.serving.batch import record_job, score_table
from pave.serving.batch_io import input_digest
from pave.storage import open_storage
from pave_testing import S3Server


def _parquet(frame: pd.DataFrame, path: Path, row_group_size: int = 100) -> Path:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size)
    return path


def _score(models: Models, tmp_path: Path, source: str, target: str, **kwargs: object) -> batch.BatchResult:
    return score_table(
        "cancer",
        input_uri=source,
        output_uri=target,
        tracking_uri=models.tracking_uri,
        cache_dir=tmp_path.parent / "batch-model-cache",
        **kwargs,  # type: ignore[arg-type]
    )


def test_parquet_rows_in_equal_rows_out_with_the_model_s_own_predictions(
    models: Models, tmp_path: Path
) -> None:
    source = _parquet(models.X, tmp_path / "in.parquet")
    assert pq.ParquetFile(source).num_row_groups == 6
    seen: list[tuple[int, int]] = []
    result = _score(
        models,
        tmp_path,
        str(source),
        str(tmp_path / "out" / "scored.parquet"),
        version="1",
        workers=2,
        progress=lambda rows, parts: seen.append((rows, parts)),
    )
    out = pd.read_parquet(tmp_path / "out" / "scored.parquet")
    assert result.rows == len(out) == len(models.X)
    assert result.parts == 6
    assert seen[-1] == (len(models.X), 6)
    pd.testing.assert_frame_equal(out[list(models.X.columns)], models.X)
    estimator = models.estimators["1"]
    sample = np.random.default_rng(0).choice(len(models.X), 50, replace=False)
    assert (out["predict"].to_numpy()[sample] == estimator.predict(models.X.iloc[sample])).all()
    proba = estimator.predict_proba(models.X.iloc[sample])
    np.testing.assert_allclose(
        out[["predict_proba_0", "predict_proba_1"]].to_numpy()[sample], proba, rtol=1e-9
    )
    assert set(out[batch.VERSION_COLUMN]) == {"1"}
    assert result.cpu_seconds > 0
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "scored.parquet"]

    run_id = record_job(result, tracking_uri=models.tracking_uri)
    run = MlflowClient(tracking_uri=models.tracking_uri).get_run(run_id)
    assert run.data.tags["pave.kind"] == "batch"
    assert run.data.tags["pave.model.version"] == "1"
    assert run.data.tags["pave.data.input"] == result.input_sha256
    assert run.data.metrics["rows"] == len(models.X)


def test_csv_to_csv_and_the_alias_picks_the_version(models: Models, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=models.tracking_uri, registry_uri=models.tracking_uri)
    client.set_registered_model_alias("cancer", "batch-test", "2")
    source = tmp_path / "in.csv"
    models.X.head(200).to_csv(source, index=False)
    result = _score(models, tmp_path, str(source), str(tmp_path / "out.csv"), alias="batch-test")
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 200
    assert result.model_version == "2"
    assert (out["predict"] == models.estimators["2"].predict(models.X.head(200))).all()
    with pytest.raises(NotFound, match="no model alias nobody"):
        _score(models, tmp_path, str(source), str(tmp_path / "x.csv"), alias="nobody")


def test_a_missing_column_is_named_and_nothing_is_written(models: Models, tmp_path: Path) -> None:
    source = _parquet(models.X.drop(columns=["mean radius"]), tmp_path / "in.parquet")
    target = tmp_path / "out" / "scored.parquet"
    with pytest.raises(InvalidInput) as info:
        _score(models, tmp_path, str(source), str(target), version="1")
    assert "column 'mean radius' is missing" in info.value.message
    assert not target.parent.exists() or not list(target.parent.iterdir())


def test_a_column_of_the_wrong_type_is_named_and_nothing_is_written(models: Models, tmp_path: Path) -> None:
    frame = models.X.copy()
    frame["mean texture"] = frame["mean texture"].astype(str)
    source = _parquet(frame, tmp_path / "in.parquet")
    target = tmp_path / "scored.parquet"
    with pytest.raises(InvalidInput) as info:
        _score(models, tmp_path, str(source), str(target), version="1")
    assert "column 'mean texture' holds BYTES, the model expects FP64" in info.value.message
    assert not target.exists()


def test_s3_in_and_out_and_a_failure_half_way_leaves_no_object(
    models: Models, tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3.bucket()
    store = open_storage(f"s3://{bucket}")
    store.put_file("inputs/cancer.parquet", _parquet(models.X, tmp_path / "in.parquet"))
    result = _score(
        models,
        tmp_path,
        f"s3://{bucket}/inputs/cancer.parquet",
        f"s3://{bucket}/outputs/scored.parquet",
        version="1",
    )
    store.download("outputs/scored.parquet", tmp_path / "back.parquet")
    out = pd.read_parquet(tmp_path / "back.parquet")
    assert len(out) == result.rows == len(models.X)
    assert (out["predict"] == models.estimators["1"].predict(models.X)).all()

    # A CSV whose second chunk has text in a numeric column: the first chunk was scored, yet no
    # object appears at the output key.
    monkeypatch.setattr(batch, "CSV_CHUNK_ROWS", 100)
    frame = models.X.head(250).astype(object)
    frame.loc[160, "worst area"] = "unknown"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    store.put_file("inputs/bad.csv", tmp_path / "bad.csv")
    with pytest.raises(InvalidInput) as info:
        _score(
            models, tmp_path, f"s3://{bucket}/inputs/bad.csv", f"s3://{bucket}/outputs/bad.csv", version="1"
        )
    assert "column 'worst area' holds 'unknown' on line 162, not a number" in info.value.message
    assert "rows from line 102" in info.value.message
    assert store.head("outputs/bad.csv") is None
    assert [o.key for o in store.list("outputs/")] == ["outputs/scored.parquet"]


def test_monitor_feeds_a_sample_of_the_scored_rows_to_the_drift_monitors(
    models: Models, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from pave.data.profile import profile_frame
    from pave.monitoring.monitors import evaluate_drift, window_rows
    from pave.monitoring.spec import MonitorDef
    from pave.serving.batch_monitor import MONITOR_ROWS

    shifted = models.X.copy()
    drifted = str(models.X.columns[0])
    shifted[drifted] = shifted[drifted] * 3 + 10
    big = pd.concat([shifted] * (MONITOR_ROWS // len(shifted) + 2), ignore_index=True)  # over the sample
    source = _parquet(big, tmp_path / "in.parquet", row_group_size=5_000)
    log_dir = tmp_path / "inference-log"
    started = datetime.now(UTC)
    result = _score(
        models,
        tmp_path,
        str(source),
        str(tmp_path / "out.parquet"),
        version="1",
        workers=2,
        monitor_dir=log_dir,
    )
    ended = datetime.now(UTC) + timedelta(seconds=1)
    assert [p.name for p in log_dir.iterdir() if p.name.startswith(".")] == []  # published, nothing staged
    rows, inputs = window_rows(log_dir, "cancer", started - timedelta(seconds=1), ended)
    assert len(rows) == MONITOR_ROWS < result.rows
    assert set(inputs) == set(models.X.columns)
    assert set(rows["version"]) == {"1"}
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert set(rows["predict"]) <= set(scored["predict"])
    assert len(rows["predict_proba"].iloc[0]) == 2  # the gateway's shape: a row of class probabilities
    from pave.monitoring.ingest import _row
    from pave.serving.inference_log import log_documents

    docs = list(log_documents(log_dir, started.timestamp() - 1, ended.timestamp()))
    assert docs
    assert all(_row(doc) is None for doc in docs)  # no requests served: not indexed

    monitor = MonitorDef.model_validate({"name": "inputs", "type": "drift", "window": "1h"})
    _, summary = evaluate_drift(log_dir, "cancer", monitor, profile_frame(models.X), ended)
    assert summary["rows"] == MONITOR_ROWS
    assert drifted in summary["drifted"]


def test_a_failed_job_feeds_nothing_to_monitoring(models: Models, tmp_path: Path) -> None:
    source = _parquet(models.X.drop(columns=[models.X.columns[0]]), tmp_path / "in.parquet")
    log_dir = tmp_path / "inference-log"
    with pytest.raises(InvalidInput):
        _score(models, tmp_path, str(source), str(tmp_path / "out.parquet"), version="1", monitor_dir=log_dir)
    assert not log_dir.exists() or not list(log_dir.iterdir())


def test_parts_predicted_in_slices_on_threads_give_the_model_s_own_output_for_every_row(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_score, "PREDICT_ROWS", 7)  # every part of 100 rows in 15 slices
    source = _parquet(models.X, tmp_path / "in.parquet")
    _score(models, tmp_path, str(source), str(tmp_path / "out.parquet"), version="1", workers=2)
    out = pd.read_parquet(tmp_path / "out.parquet")
    estimator = models.estimators["1"]
    assert (out["predict"].to_numpy() == estimator.predict(models.X)).all()
    np.testing.assert_allclose(
        out[["predict_proba_0", "predict_proba_1"]].to_numpy(), estimator.predict_proba(models.X), rtol=1e-9
    )


def test_an_input_s_digest_is_remembered_only_while_the_file_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, cache = tmp_path / "in.parquet", tmp_path / "digests"
    path.write_bytes(b"a" * 1000)
    assert input_digest(path, cache) == hashlib.sha256(b"a" * 1000).hexdigest()
    assert not cache.exists()  # written a moment ago: a write in the same clock tick would not show

    monkeypatch.setattr(batch_io, "SETTLED_NS", 0)
    assert input_digest(path, cache) == hashlib.sha256(b"a" * 1000).hexdigest()
    (entry,) = cache.iterdir()
    entry.write_text("0" * 64)
    assert input_digest(path, cache) == "0" * 64  # the same file: read from the cache, not hashed

    before = path.stat()
    time.sleep(0.05)  # past the file system clock's tick, so that the change shows in the ctime
    path.write_bytes(b"b" * 1000)  # the same size,
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old mtime put back
    assert input_digest(path, cache) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_a_folder_output_holds_part_files_in_the_input_s_order_and_a_manifest(
    models: Models, tmp_path: Path
) -> None:
    import json

    from pave.serving.batch_dataset import MARKER

    source = _parquet(models.X, tmp_path / "in.parquet", row_group_size=50)  # 12 row groups
    target = tmp_path / "out" / "scored"
    seen: list[tuple[int, int]] = []
    result = _score(
        models,
        tmp_path,
        str(source),
        f"{target}/",
        version="1",
        workers=2,
        progress=lambda rows, parts: seen.append((rows, parts)),
    )
    names = sorted(p.name for p in target.iterdir())
    assert names == [MARKER] + [f"part-{i:06d}.parquet" for i in range(12)]
    assert [p.name for p in target.parent.iterdir()] == ["scored"]  # nothing staged is left beside it
    assert seen[-1] == (len(models.X), 12)
    for back in (pd.read_parquet(target), pq.read_table(target).to_pandas()):
        assert result.rows == len(back) == len(models.X)
        pd.testing.assert_frame_equal(back[list(models.X.columns)], models.X)  # the input's order
        assert (back["predict"].to_numpy() == models.estimators["1"].predict(models.X)).all()
        assert set(back[batch.VERSION_COLUMN]) == {"1"}
    manifest = json.loads((target / MARKER).read_text())
    assert manifest["rows"] == len(models.X)
    assert manifest["model_version"] == "1"
    assert [p["rows"] for p in manifest["parts"]] == [50] * 11 + [len(models.X) - 550]

    # Scored again, one part: the previous output is replaced whole (no part of it is left).
    _parquet(models.X.head(40), source)
    _score(models, tmp_path, str(source), f"{target}/", version="2")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "part-000000.parquet"]
    assert (pd.read_parquet(target)["model_version"] == "2").all()


def test_a_failed_folder_job_leaves_nothing_and_a_folder_of_other_files_is_refused(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "CSV_CHUNK_ROWS", 100)
    frame = models.X.head(250).astype(object)
    frame.loc[160, "worst area"] = "unknown"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InvalidInput, match="column 'worst area' holds 'unknown' on line 162, not a number"):
        _score(models, tmp_path, str(tmp_path / "bad.csv"), str(tmp_path / "out") + "/", version="1")
    # the first part was written, then removed with its hidden folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    source = _parquet(models.X, tmp_path / "in.parquet")
    with pytest.raises(InvalidInput, match="is not a finished Pave batch output") as info:
        _score(models, tmp_path, str(source), f"{mine}/", version="1")
    assert "choose another --output" in (info.value.hint or "")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_a_folder_output_in_s3_is_committed_by_its_manifest(
    models: Models, tmp_path: Path, s3: S3Server
) -> None:
    from pave.serving.batch_dataset import MARKER

    bucket = s3.bucket()
    store = open_storage(f"s3://{bucket}")
    store.put_file("inputs/cancer.parquet", _parquet(models.X, tmp_path / "in.parquet", row_group_size=200))
    source, scored = f"s3://{bucket}/inputs/cancer.parquet", f"s3://{bucket}/outputs/scored/"
    store.put_bytes("outputs/scored/part-000009.parquet", b"a previous output's part")
    store.put_bytes(f"outputs/scored/{MARKER}", b"{}")
    result = _score(models, tmp_path, source, scored, version="1")
    keys = sorted(o.key.removeprefix("outputs/scored/") for o in store.list("outputs/scored/"))
    files = _listed(store, "outputs/scored/")
    assert keys == sorted([MARKER, *files])  # the previous output's part is gone
    assert [name.split("-")[1] for name in files] == ["000000", "000001", "000002"]
    back = _read_listed(store, "outputs/scored/", tmp_path)
    assert len(back) == result.rows == len(models.X)
    pd.testing.assert_frame_equal(back[list(models.X.columns)], models.X)

    # A failed job: the previous output stays complete, and nothing of the new one is uploaded.
    (tmp_path / "bad.csv").write_text("mean radius\n1.0\n")
    store.put_file("inputs/bad.csv", tmp_path / "bad.csv")
    with pytest.raises(InvalidInput, match="is missing"):
        _score(models, tmp_path, f"s3://{bucket}/inputs/bad.csv", scored, version="1")
    assert len(list(store.list("outputs/scored/"))) == 4

    store.put_bytes("theirs/data.bin", b"someone's")
    with pytest.raises(InvalidInput, match="is not a finished Pave batch output"):
        _score(models, tmp_path, source, f"s3://{bucket}/theirs/", version="1")
    assert [o.key for o in store.list("theirs/")] == ["theirs/data.bin"]


def _listed(store: object, prefix: str) -> list[str]:
    """The part files a folder output's ``_SUCCESS`` lists, in order."""
    import json

    return [part["file"] for part in json.loads(store.get_bytes(prefix + "_SUCCESS"))["parts"]]  # type: ignore[attr-defined]


def _read_listed(store: object, prefix: str, tmp_path: Path) -> pd.DataFrame:
    """The rows of a folder output in object storage, read from the files its ``_SUCCESS`` lists."""
    paths = [store.download(prefix + name, tmp_path / "back" / name) for name in _listed(store, prefix)]  # type: ignore[attr-defined]
    return pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)


def test_a_folder_upload_to_s3_failing_half_way_leaves_the_previous_output_complete(
    models: Models, tmp_path: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pave.serving.batch_dataset import MARKER
    from pave.storage.base import StorageUnreachable
    from pave.storage.s3 import S3Storage

    bucket = s3.bucket()
    store = open_storage(f"s3://{bucket}")
    store.put_file("inputs/cancer.parquet", _parquet(models.X, tmp_path / "in.parquet", row_group_size=200))
    source, scored = f"s3://{bucket}/inputs/cancer.parquet", f"s3://{bucket}/outputs/scored/"
    _score(models, tmp_path, source, scored, version="1")
    previous = sorted(o.key for o in store.list("outputs/scored/"))
    manifest = store.get_bytes(f"outputs/scored/{MARKER}")

    # The store refuses the new output's second part (the real store; only that call fails).
    put_file, calls = S3Storage.put_file, []

    def failing(self: S3Storage, key: str, path: Path, **kwargs: object) -> object:
        calls.append(key)
        if len(calls) == 2:
            raise StorageUnreachable("the object store went away half-way through the upload")
        return put_file(self, key, path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(S3Storage, "put_file", failing)
    with pytest.raises(StorageUnreachable):
        _score(models, tmp_path, source, scored, version="2")
    monkeypatch.setattr(S3Storage, "put_file", put_file)
    assert len(calls) == 2  # one part was uploaded before the failure
    # The previous output is untouched: its manifest, its parts, its rows (version 1), nothing more.
    assert sorted(o.key for o in store.list("outputs/scored/")) == previous
    assert store.get_bytes(f"outputs/scored/{MARKER}") == manifest
    back = _read_listed(store, "outputs/scored/", tmp_path)
    pd.testing.assert_frame_equal(back[list(models.X.columns)], models.X)
    assert set(back[batch.VERSION_COLUMN]) == {"1"}

    # The next job replaces it whole: the new manifest, only its parts, version 2.
    _score(models, tmp_path, source, scored, version="2")
    keys = sorted(o.key.removeprefix("outputs/scored/") for o in store.list("outputs/scored/"))
    assert keys == sorted([MARKER, *_listed(store, "outputs/scored/")])
    assert set(_read_listed(store, "outputs/scored/", tmp_path / "v2")[batch.VERSION_COLUMN]) == {"2"}


def test_columns_the_input_holds_compressed_to_no_gain_are_written_uncompressed(
    models: Models, tmp_path: Path
) -> None:
    frame = models.X.copy()
    noise = str(frame.columns[0])
    frame[noise] = np.random.default_rng(0).normal(size=len(frame))  # full-precision floats: no gain
    rounded = str(frame.columns[1])
    frame[rounded] = frame[rounded].round(0)  # few distinct values: Snappy gains
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), source, use_dictionary=False)
    _score(models, tmp_path, str(source), str(tmp_path / "out.parquet"), version="1")
    group = pq.ParquetFile(tmp_path / "out.parquet").metadata.row_group(0)
    codecs = {group.column(j).path_in_schema: group.column(j).compression for j in range(group.num_columns)}
    assert codecs[noise] == "UNCOMPRESSED"
    assert codecs[rounded] == "SNAPPY"
    assert codecs["predict_proba_1"] == "UNCOMPRESSED"  # a model's float output: full precision
    assert codecs["predict"] == codecs[batch.VERSION_COLUMN] == "SNAPPY"
    assert (pd.read_parquet(tmp_path / "out.parquet")[noise] == frame[noise]).all()


def test_a_pyfunc_model_scores_parts_in_forked_workers_in_the_input_s_order(
    models: Models, tmp_path: Path
) -> None:
    import mlflow

    client = MlflowClient(tracking_uri=models.tracking_uri, registry_uri=models.tracking_uri)
    if not client.search_registered_models("name = 'rowsum'"):
        mlflow.set_registry_uri(models.tracking_uri)
        mlflow.set_tracking_uri(models.tracking_uri)
        try:
            mlflow.register_model(models.pyfunc_uri, "rowsum")
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    source = _parquet(models.X, tmp_path / "in.parquet")  # 6 row groups, read here while workers predict
    result = score_table(
        "rowsum",
        input_uri=str(source),
        output_uri=f"{tmp_path / 'out'}/",
        tracking_uri=models.tracking_uri,
        cache_dir=tmp_path.parent / "batch-model-cache",
        version="1",
        workers=2,
    )
    out = pd.read_parquet(tmp_path / "out")
    assert result.rows == len(out) == len(models.X)
    assert result.parts == 6
    pd.testing.assert_frame_equal(out[list(models.X.columns)], models.X)
    np.testing.assert_allclose(out["predict"].to_numpy(), models.X.sum(axis=1).to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("target", ["scored.parquet", "scored/"])
def test_a_model_refusing_rows_of_a_later_part_fails_the_job_naming_the_part_and_leaves_nothing(
    models: Models, tmp_path: Path, target: str
) -> None:
    frame = models.X.copy()
    frame.loc[430, "mean radius"] = np.nan  # row group 4 of 6 (the model's own predict refuses NaN)
    source = _parquet(frame, tmp_path / "in.parquet")
    with pytest.raises(InvalidInput, match="row group 4: the model failed on these rows"):
        _score(models, tmp_path, str(source), f"{tmp_path / 'out'}/{target}", version="1", workers=2)
    assert not list((tmp_path / "out").iterdir())  # no output and nothing staged beside it


def test_a_slice_s_outputs_survive_the_next_slice_filling_the_thread_s_matrix(
    models: Models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from pave.serving.loading import load_model

    monkeypatch.setattr(batch_score, "PREDICT_ROWS", 7)
    loaded = load_model(models.uri("1"), tracking_uri=models.tracking_uri, cache_dir=tmp_path / "cache")
    # a model that hands back a view of its input (its first column), as a passthrough could
    first = loaded.schema.order[0]
    echo = dataclasses.replace(loaded, predict=lambda matrix: {"predict": matrix[:, 0]})
    table = pa.Table.from_pandas(models.X.head(100), preserve_index=False)
    matrices = batch_score.Matrices(loaded.schema)
    scored = batch_score.score_arrow(echo, table, "1", "test", matrices).to_pandas()
    np.testing.assert_array_equal(scored["predict"].to_numpy(), models.X[first].head(100).to_numpy())
    # and the real model through the same buffer: its own output for every row
    scored = batch_score.score_arrow(loaded, table, "1", "test", matrices).to_pandas()
    assert (scored["predict"].to_numpy() == models.estimators["1"].predict(models.X.head(100))).all()


def test_the_registry_is_asked_once_and_a_version_that_is_no_number_is_refused(
    models: Models, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from pave.serving.loading import load_model

    version, location = batch._version("cancer", "1", None, models.tracking_uri)
    assert (version, location) == (
        "1",
        MlflowClient(models.tracking_uri).get_model_version_download_uri("cancer", "1"),
    )
    # The loader takes that location as it is: a name the registry does not know loads all the same.
    loaded = load_model(
        "models:/not-registered/1", tracking_uri=models.tracking_uri, cache_dir=tmp_path, location=location
    )
    assert (
        loaded.predict(models.X.to_numpy()[:5])["predict"] == models.estimators["1"].predict(models.X[:5])
    ).all()
    with pytest.raises(InvalidInput, match="--version v2 is not a version number"):
        _score(
            models,
            tmp_path,
            str(_parquet(models.X, tmp_path / "in.parquet")),
            str(tmp_path / "o.parquet"),
            version="v2",
        )
    with pytest.raises(NotFound, match="has no model version 9"):
        batch._version("cancer", "9", None, models.tracking_uri)


def test_columns_without_nulls_are_written_not_null_and_a_column_with_nulls_keeps_them(
    models: Models, tmp_path: Path
) -> None:
    frame = models.X.copy()
    frame["note"] = [None if i % 7 == 0 else f"n{i}" for i in range(len(frame))]  # not the model's
    source = _parquet(frame, tmp_path / "in.parquet", row_group_size=100)
    folder, one = tmp_path / "folder", tmp_path / "one.parquet"
    _score(models, tmp_path, str(source), f"{folder}/", version="1", workers=2)
    _score(models, tmp_path, str(source), str(one), version="1", workers=2)
    for written, path in ((folder / "part-000003.parquet", folder), (one, one)):
        schema = pq.ParquetFile(written).schema
        optional = {
            schema.column(i).name for i in range(len(schema)) if schema.column(i).max_definition_level
        }
        assert optional == {"note"}  # the input's other columns and the model's outputs: REQUIRED
        back = pd.read_parquet(path)
        pd.testing.assert_frame_equal(back[list(frame.columns)], frame)  # values and nulls as they were
        assert (back["predict"].to_numpy() == models.estimators["1"].predict(models.X)).all()
