"""A batch job's monitoring records on the control plane's side: every record checked (the project's
own deployment, a batch id, one value per row), then stored as the installation stores its log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from sqlalchemy import select

from pave.config import Settings
from pave.errors import InvalidInput
from pave.serving.batch_monitor import MONITOR_ROWS, BatchLog, check_records, request_bodies, store_records
from pave.serving.inference_log import read_inference_log
from pave.serving.shipping import Mirror
from pave.store import migrate
from pave.store.db import make_engine, session_factory
from pave.store.tables import InferenceSegmentRow

PROJECT = "churn"


def _records(folder: Path, parts: int = 3, rows: int = 40) -> list[dict[str, Any]]:
    """What `pave batch --monitor` publishes for ``parts`` scored parts, as the client sends it."""
    log = BatchLog(folder, deployment=PROJECT, version="2", inputs=["age", "plan"], total_rows=None)
    for part in range(parts):
        table = pa.table(
            {
                "age": [float(part * rows + i) for i in range(rows)],
                "plan": ["basic" if i % 2 else "pro" for i in range(rows)],
                "predict": [i % 2 for i in range(rows)],
                "predict_proba_0": [0.25] * rows,
                "predict_proba_1": [0.75] * rows,
            }
        )
        log.add(table, ["predict", "predict_proba_0", "predict_proba_1"])
    assert log.publish() is not None
    bodies = list(request_bodies(folder))
    assert len(bodies) == 1
    records: list[dict[str, Any]] = orjson.loads(bodies[0])["records"]
    return records


def test_the_records_of_a_job_pass_and_come_back_as_json_lines(tmp_path: Path) -> None:
    records = _records(tmp_path)
    data, first_ts, rows = check_records(PROJECT, records, registered={"2"})
    assert rows == 120
    assert first_ts == records[0]["ts"]
    assert [orjson.loads(line) for line in data.splitlines()] == records


def _broken(tmp_path: Path, change: Any) -> list[dict[str, Any]]:
    records = _records(tmp_path)
    change(records[1])
    return records


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda r: r.update(deployment="payments"), "record 1: deployment 'payments' is not this project"),
        (lambda r: r.update(id="abc-1"), "record 1: id is not a batch record's id"),
        (lambda r: r["inputs"]["age"].pop(), "record 1: input 'age' is not a list of 40 values"),
        (lambda r: r["inputs"].update(age=[{"x": 1}] * 40), "record 1: input 'age' has a value that is not"),
        (lambda r: r["outputs"]["predict_proba"].__setitem__(0, ["a"]), "output 'predict_proba' has a row"),
        (lambda r: r.update(ts=time.time() + 3600), "record 1: ts"),
        (lambda r: r.update(ts=float("nan")), "record 1: ts"),
        (lambda r: r.update(shadow=True), "record 1: shadow is not false"),
        (lambda r: r.update(extra=1), "unknown field(s) ['extra']"),
        (lambda r: r.pop("outputs"), "missing field(s) ['outputs']"),
        (lambda r: r.update(outputs={}), "record 1: outputs is not an object"),
        (lambda r: r.update(version="3"), "record 1: version '3' is not a registered version of model"),
    ],
)
def test_a_bad_record_is_refused_naming_it(tmp_path: Path, change: Any, named: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_records(PROJECT, _broken(tmp_path, change), registered={"2"})
    assert named in refused.value.message


def test_not_an_object_and_too_many_rows_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="record 0: a record is a JSON object, got str"):
        check_records(PROJECT, ["{}"], registered={"2"})
    big = _records(tmp_path, parts=1, rows=MONITOR_ROWS)
    big.append(dict(big[0], id=big[0]["id"] + "x"))
    with pytest.raises(InvalidInput, match=f"more than {MONITOR_ROWS} rows"):
        check_records(PROJECT, big, registered={"2"})


def test_request_bodies_split_a_large_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pave.serving import batch_monitor

    _records(tmp_path, parts=5)  # one body at the default size
    [published] = tmp_path.glob("inference-*.jsonl")
    longest = max(len(line) for line in published.read_bytes().splitlines())
    monkeypatch.setattr(batch_monitor, "REQUEST_BYTES", longest + 1)  # room for one record a body
    bodies = [orjson.loads(body)["records"] for body in request_bodies(tmp_path)]
    assert [len(records) for records in bodies] == [1] * 5
    monkeypatch.setattr(batch_monitor, "MONITOR_ROWS", 80)  # and at most two parts of 40 rows a body
    monkeypatch.setattr(batch_monitor, "REQUEST_BYTES", 1 << 30)
    assert [len(orjson.loads(body)["records"]) for body in request_bodies(tmp_path)] == [2, 2, 1]


def test_stored_as_a_file_of_the_log_folder_without_shipping(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "control-plane", inference_log_ship="off")
    data, first_ts, _ = check_records(PROJECT, _records(tmp_path / "job"), registered={"2"})
    kind, name = store_records(settings, session_factory(make_engine(settings.db_url)), data, first_ts)
    assert kind == "file"
    assert [p.name for p in settings.inference_log_dir.iterdir()] == [name]  # nothing staged left
    frame = read_inference_log(settings.inference_log_dir, deployment=PROJECT)
    assert len(frame) == 3


def test_stored_as_a_segment_that_another_control_plane_mirrors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/pave.db"
    store = tmp_path / "object-store"
    store.mkdir()
    engine = make_engine(url)
    migrate.upgrade(engine, tmp_path)
    sessions = session_factory(engine)
    here = Settings(
        home=tmp_path / "cp-a", database_url=url, artifact_root=str(store), inference_log_ship="on"
    )
    data, first_ts, _ = check_records(PROJECT, _records(tmp_path / "job"), registered={"2"})
    kind, key = store_records(here, sessions, data, first_ts)
    assert kind == "segment"
    with sessions() as session:
        [segment] = session.scalars(select(InferenceSegmentRow)).all()
    assert (segment.key, segment.records) == (key, 3)
    assert (store / key).read_bytes() == data
    assert not here.inference_log_dir.exists() or not list(here.inference_log_dir.iterdir())

    other = Settings(
        home=tmp_path / "cp-b", database_url=url, artifact_root=str(store), inference_log_ship="on"
    )
    other.ensure_home()
    assert Mirror(other).pull(sessions) == 1
    frame = read_inference_log(other.inference_log_dir, deployment=PROJECT)
    assert len(frame) == 3
    engine.dispose()
